"""Concurrent NGSI-LD partial updates and merge-patches of one attribute: every acknowledged change survives
(the store merges each request's keys at commit) and every one is in the attribute's history."""

from __future__ import annotations

import asyncio

import httpx
from ngsi_support import BASE, TEST_CTX, create, link, vehicle

V1 = "urn:ngsi-ld:Vehicle:V1"
N = 40
H = link(TEST_CTX)  # the entities are created in the test suite's context: address their attributes in it


async def test_concurrent_partial_updates_keep_every_sub_attribute(client: httpx.AsyncClient) -> None:
    """PATCH …/attrs/speed with a different sub-attribute each, all at once: the attribute holds them all."""
    await create(client, vehicle(1))

    async def patch(i: int) -> int:
        r = await client.patch(f"{BASE}/entities/{V1}/attrs/speed", json={f"sensor{i}": {"type": "Property", "value": i}},
                               headers=H)
        return r.status_code

    assert set(await asyncio.gather(*(patch(i) for i in range(N)))) == {204}
    speed = (await client.get(f"{BASE}/entities/{V1}", headers=H)).json()["speed"]
    assert {k for k in speed if k.startswith("sensor")} == {f"sensor{i}" for i in range(N)}
    assert speed["value"] == 50 and speed["observedAt"] == "2024-01-01T00:00:00.000Z"
    history = (await client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=H)).json()["speed"]
    assert len(history) == N + 1  # the creation and every patch, though all keep the same observedAt


async def test_concurrent_merge_patches_keep_every_change(client: httpx.AsyncClient) -> None:
    """PATCH /entities/{id} merging different sub-attributes into one attribute, all at once: none is lost."""
    await create(client, vehicle(1))

    async def merge(i: int) -> int:
        body = {"brandName": {"type": "Property", "value": "Mercedes", f"note{i}": {"type": "Property", "value": i}}}
        return (await client.patch(f"{BASE}/entities/{V1}", json=body, headers=H)).status_code

    assert set(await asyncio.gather(*(merge(i) for i in range(N)))) == {204}
    brand = (await client.get(f"{BASE}/entities/{V1}", headers=H)).json()["brandName"]
    assert {k for k in brand if k.startswith("note")} == {f"note{i}" for i in range(N)}


async def test_value_only_partial_update_keeps_the_earlier_instance(client: httpx.AsyncClient) -> None:
    """A partial update sending only value keeps observedAt; the temporal API shows both instances."""
    await create(client, vehicle(1, speed=50))
    r = await client.patch(f"{BASE}/entities/{V1}/attrs/speed", json={"value": 60}, headers=H)
    assert r.status_code == 204
    history = (await client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=H)).json()["speed"]
    assert [(h["value"], h["observedAt"]) for h in history] == [(50, "2024-01-01T00:00:00.000Z"),
                                                                 (60, "2024-01-01T00:00:00.000Z")]
