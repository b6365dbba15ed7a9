"""Conformance: temporal retrieval (ETSI GS CIM 009 §5.7.3–5.7.4, §4.5.8 aggregation) — 5 cases.

retrieve an entity's history (normalized), timerel before/after/between, lastN, temporalValues,
aggregation with aggrMethods/aggrPeriodDuration, and temporal query by type with count.
"""

from __future__ import annotations

import httpx
import pytest
from ngsi_support import BASE, LINK, create, vehicle

from citybrain.runtime import CityBrain

V1 = "urn:ngsi-ld:Vehicle:V1"
T = f"{BASE}/temporal/entities"
H = {"Link": LINK}


@pytest.fixture
async def history(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await create(client, vehicle(1, 10))
    for hour, speed in ((1, 20), (2, 30), (3, 40)):
        r = await client.patch(f"{BASE}/entities/{V1}/attrs/speed", headers=H,
                               json={"value": speed, "observedAt": f"2024-01-01T0{hour}:00:00Z"})
        assert r.status_code == 204
    return client


async def speeds(client: httpx.AsyncClient, **params: str) -> list:
    r = await client.get(f"{T}/{V1}", params={"attrs": "speed", **params}, headers=H)
    assert r.status_code == 200, r.text
    return [i["value"] for i in r.json()["speed"]]


async def test_retrieve_history(history: httpx.AsyncClient) -> None:
    assert await speeds(history) == [10, 20, 30, 40]
    r = await history.get(f"{T}/{V1}", params={"attrs": "speed", "lastN": "1"}, headers=H)
    assert r.json()["speed"][0]["observedAt"] == "2024-01-01T03:00:00.000Z"


async def test_timerel(history: httpx.AsyncClient) -> None:
    assert await speeds(history, timerel="before", timeAt="2024-01-01T02:00:00Z") == [10, 20]
    assert await speeds(history, timerel="after", timeAt="2024-01-01T02:00:00Z") == [30, 40]
    assert await speeds(history, timerel="between", timeAt="2024-01-01T01:00:00Z", endTimeAt="2024-01-01T03:00:00Z") == [20, 30]
    assert await speeds(history, lastN="2") == [30, 40]


async def test_temporal_values(history: httpx.AsyncClient) -> None:
    r = await history.get(f"{T}/{V1}", params={"attrs": "speed", "options": "temporalValues"}, headers=H)
    assert r.json()["speed"]["values"][1] == [20, "2024-01-01T01:00:00.000Z"]


async def test_aggregation(history: httpx.AsyncClient) -> None:
    r = await history.get(f"{T}/{V1}", headers=H, params={"attrs": "speed", "aggrMethods": "avg,max,totalCount",
                                                         "aggrPeriodDuration": "PT2H"})
    agg = r.json()["speed"]
    assert [a[0] for a in agg["avg"]] == [15, 35] and [a[0] for a in agg["max"]] == [20, 40]
    assert agg["totalCount"][0][1:] == ["2024-01-01T00:00:00.000Z", "2024-01-01T02:00:00.000Z"]


async def test_temporal_query(history: httpx.AsyncClient, runtime: CityBrain) -> None:
    r = await history.get(T, params={"type": "Vehicle", "attrs": "speed", "lastN": "1", "count": "true"}, headers=H)
    assert r.status_code == 200 and r.headers["NGSILD-Results-Count"] == "1" and r.json()[0]["speed"][0]["value"] == 40
    assert (await history.get(T)).status_code == 400
    assert (await history.get(f"{T}/urn:ngsi-ld:Vehicle:none")).status_code == 404
