"""An NGSI-LD subscription made by a place-scoped identity notifies only changes of entities in its area,
and is visible (list, retrieve, update, delete) only to callers whose area holds it.

A city operator scoped to c1 subscribes to every TrafficFlowObserved: t1 (in c1) changing is notified, t2 (in
c2) is not; an unscoped city operator's subscription gets both; a community operator of c2 cannot see the
c1 subscription.
"""

from __future__ import annotations

import asyncio
from typing import Any

from trustcity import C1, C2, T1, T2, City

N = "/ngsi-ld/v1"


class Capture:
    """Stands in for the notifier's HTTP client: keeps what would have been posted, per endpoint."""

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = {}

    async def post(self, uri: str, content: bytes, headers: dict[str, str]) -> Any:
        self.sent.setdefault(uri, []).append(content)
        return type("Answer", (), {"status_code": 204})()

    async def aclose(self) -> None:
        pass


async def headers_of(city: City, name: str, role: str, place: str) -> dict[str, str]:
    ctx = city.rt.context("admin:test")
    await city.rt.execute("user.add", {"name": name, "role": role, "place": place}, ctx)
    return {"X-API-Key": (await city.rt.execute("user.key", {"name": name}, ctx))["key"]}


async def test_scoped_subscription_sees_only_its_area(city: City) -> None:
    capture = Capture()
    city.rt.ports.ngsi_notifier.client = capture
    c = city.client
    scoped = await headers_of(city, "c1-op", "city_operator", C1)
    sub = {"type": "Subscription", "entities": [{"type": "TrafficFlowObserved"}], "watchedAttributes": ["intensity"]}
    r = await c.post(f"{N}/subscriptions", json={**sub, "id": "urn:ngsi-ld:Subscription:mine",
                                                   "notification": {"endpoint": {"uri": "http://sink/c1"}}},
                     headers=scoped)
    assert r.status_code == 201, r.text
    r = await c.post(f"{N}/subscriptions", json={**sub, "id": "urn:ngsi-ld:Subscription:city",
                                                   "notification": {"endpoint": {"uri": "http://sink/all"}}},
                     headers=city.auth("city_operator"))
    assert r.status_code == 201, r.text
    ctx = city.rt.context("admin:test")
    for n, t in enumerate((T2, T1)):
        await city.rt.execute("entity.update", {"id": t, "attrs": {"intensity": {"type": "Property", "value": 500 + n}}},
                              ctx)
    for _ in range(100):
        if len(capture.sent.get("http://sink/all", [])) >= 2 and capture.sent.get("http://sink/c1"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    mine = b"".join(capture.sent.get("http://sink/c1", []))
    everyone = b"".join(capture.sent.get("http://sink/all", []))
    assert T1.encode() in mine and T2.encode() not in mine
    assert T1.encode() in everyone and T2.encode() in everyone

    other = await headers_of(city, "c2-op", "city_operator", C2)
    listed = await c.get(f"{N}/subscriptions", headers=other)
    assert listed.status_code == 200 and listed.json() == []
    assert (await c.get(f"{N}/subscriptions/urn:ngsi-ld:Subscription:mine", headers=other)).status_code == 404
    assert (await c.delete(f"{N}/subscriptions/urn:ngsi-ld:Subscription:mine", headers=other)).status_code == 404
    own = await c.get(f"{N}/subscriptions", headers=scoped)
    assert [s["id"] for s in own.json()] == ["urn:ngsi-ld:Subscription:mine"]
    every = await c.get(f"{N}/subscriptions", headers=city.auth("city_operator"))
    assert sorted(s["id"] for s in every.json()) == ["urn:ngsi-ld:Subscription:city", "urn:ngsi-ld:Subscription:mine"]
