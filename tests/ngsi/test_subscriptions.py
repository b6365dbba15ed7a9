"""Conformance: subscriptions and notifications (ETSI GS CIM 009 §5.8, §5.11) — 6 cases.

CRUD (201 + Location, 409, list, PATCH, DELETE), validation errors, notification on entity change with
watchedAttributes and q, notification from observations on the bus (cb.obs), status counters, and a
failing endpoint that does not delay another subscription.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from ngsi_support import BASE, LD, LINK, create, ld, vehicle

from citybrain.ngsi.notify import Notifier
from citybrain.runtime import CityBrain

H = {"Link": LINK}


class Sink:
    """Captures notifications: patches the notifier's HTTP client with an in-memory transport."""

    def __init__(self, slow: set[str] | None = None) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.slow = slow or set()
        self.event = asyncio.Event()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.slow:
            await asyncio.sleep(3)
            return httpx.Response(500)
        import orjson

        self.got.append((host, orjson.loads(request.content)))
        self.event.set()
        return httpx.Response(200)


@pytest.fixture
def sink(runtime: CityBrain) -> Sink:
    s = Sink(slow={"slow.test"})
    notifier: Notifier = runtime.ports.ngsi_notifier
    notifier.client = httpx.AsyncClient(transport=httpx.MockTransport(s.handler))
    notifier.backoff = 0.01
    notifier.retries = 1
    return s


def sub(uri: str = "http://sink.test/n", **extra: Any) -> dict[str, Any]:
    return {"type": "Subscription", "entities": [{"type": "Vehicle"}], "notification": {"endpoint": {"uri": uri}}, **extra}


async def wait_for(sink: Sink, n: int, seconds: float = 2.0) -> None:
    async def loop() -> None:
        while len(sink.got) < n:
            sink.event.clear()
            await sink.event.wait()

    await asyncio.wait_for(loop(), seconds)


async def test_crud(client: httpx.AsyncClient) -> None:
    body = sub(id="urn:ngsi-ld:Subscription:s1")
    r = await client.post(f"{BASE}/subscriptions", content=ld(body), headers=LD)
    assert r.status_code == 201 and r.headers["location"].endswith("urn:ngsi-ld:Subscription:s1")
    assert (await client.post(f"{BASE}/subscriptions/", content=ld(body), headers=LD)).status_code == 409
    got = (await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1")).json()
    assert got["status"] == "active" and got["notification"]["endpoint"]["uri"] == "http://sink.test/n"
    assert len((await client.get(f"{BASE}/subscriptions")).json()) == 1
    r = await client.patch(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1", json={"isActive": False})
    assert r.status_code == 204
    assert (await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1")).json()["status"] == "paused"
    assert (await client.delete(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1")).status_code == 204
    assert (await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:s1")).status_code == 404


@pytest.mark.parametrize("bad", [
    {"type": "Nope"}, {"entities": []}, {"notification": {}}, {"notification": {"endpoint": {"uri": "ftp://x"}}},
    {"q": "speed>>"}, {"throttling": -1}, {"entities": [{"id": "urn:x:1"}]}, {"unknownMember": 1},
])
async def test_invalid_subscriptions(client: httpx.AsyncClient, bad: dict[str, Any]) -> None:
    r = await client.post(f"{BASE}/subscriptions", json={**sub(), **bad})
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")


async def test_notification_on_change_with_q_and_watched(client: httpx.AsyncClient, sink: Sink) -> None:
    body = sub(watchedAttributes=["speed"], q="speed>100", notification={
        "endpoint": {"uri": "http://sink.test/n"}, "format": "keyValues", "attributes": ["speed"]})
    assert (await client.post(f"{BASE}/subscriptions", content=ld(body), headers=LD)).status_code == 201
    await create(client, vehicle(1))
    await client.patch(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1/attrs", json={"brandName": {"type": "Property", "value": "x"}},
                       headers=H)
    await client.patch(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1/attrs/speed", json={"value": 130}, headers=H)
    await wait_for(sink, 1)
    host, note = sink.got[0]
    assert note["type"] == "Notification" and note["data"] == [{"id": "urn:ngsi-ld:Vehicle:V1", "type": "Vehicle", "speed": 130}]
    await asyncio.sleep(0.05)
    assert len(sink.got) == 1


async def test_notification_from_observations(client: httpx.AsyncClient, runtime: CityBrain, sink: Sink) -> None:
    await client.post(f"{BASE}/entities", json={"id": "urn:ngsi-ld:AirQualityObserved:a1", "type": "AirQualityObserved"})
    body = {"type": "Subscription", "entities": [{"type": "AirQualityObserved"}], "watchedAttributes": ["pm25"],
            "notification": {"endpoint": {"uri": "http://sink.test/aq"}}}
    assert (await client.post(f"{BASE}/subscriptions", json=body)).status_code == 201
    report = await runtime.ports.ingest.submit([{"entity": "urn:ngsi-ld:AirQualityObserved:a1",
                                                        "observedAt": "2024-05-01T00:00:00Z", "values": {"pm25": 80}}])
    assert report.stored == 1
    await wait_for(sink, 1)
    assert sink.got[0][1]["data"][0]["pm25"]["value"] == 80


async def test_status_and_isolation_from_failing_endpoint(client: httpx.AsyncClient, sink: Sink) -> None:
    slow = sub("http://slow.test/n", id="urn:ngsi-ld:Subscription:slow")
    fast = sub("http://fast.test/n", id="urn:ngsi-ld:Subscription:fast")
    for s in (slow, fast):
        assert (await client.post(f"{BASE}/subscriptions", content=ld(s), headers=LD)).status_code == 201
    await create(client, vehicle(1))
    await wait_for(sink, 1, seconds=1.0)  # the fast endpoint is served while the slow one hangs
    assert sink.got[0][0] == "fast.test"
    status = (await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:fast")).json()["notification"]
    assert status["timesSent"] == 1 and status["lastSuccess"] and status["lastNotification"]


async def test_throttling(client: httpx.AsyncClient, sink: Sink) -> None:
    assert (await client.post(f"{BASE}/subscriptions", content=ld(sub(throttling=0.3)), headers=LD)).status_code == 201
    await create(client, vehicle(1))
    await wait_for(sink, 1)
    for v in (1, 2, 3):
        await client.patch(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1/attrs/speed", json={"value": v}, headers=H)
    await wait_for(sink, 2)
    assert len(sink.got) == 2 and sink.got[1][1]["data"][0]["speed"]["value"] == 3
