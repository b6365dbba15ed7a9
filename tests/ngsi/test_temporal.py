"""Conformance: temporal retrieval and writes (ETSI GS CIM 009 §5.6.11–5.6.12, §5.7.3–5.7.4, §4.5.8) — 8 cases.

retrieve an entity's history (normalized), timerel before/after/between, lastN, temporalValues,
aggregation with aggrMethods/aggrPeriodDuration, temporal query by type with count; create or update a
temporal representation (201 new, 204 existing, idempotent per observedAt), add attribute instances
(older instances go to history without replacing a newer current value), and the 4xx ProblemDetails of
bad temporal writes (DELETE of a temporal representation is not offered: 405).
"""

from __future__ import annotations

import httpx
import pytest
from ngsi_support import BASE, LD, LINK, create, ld, vehicle

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


def instances(*pairs: tuple[float, str]) -> list[dict]:
    return [{"type": "Property", "value": v, "observedAt": f"2024-01-01T{t}:00Z"} for v, t in pairs]


async def test_create_or_update_temporal_representation(client: httpx.AsyncClient, runtime: CityBrain) -> None:
    body = {"id": V1, "type": "Vehicle", "speed": instances((20, "01:00"), (10, "00:00"), (30, "02:00")),
            "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:P1",
                         "observedAt": "2024-01-01T00:30:00Z"}}
    r = await client.post(f"{T}/", content=ld(body), headers=LD)  # the trailing-slash form too
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/ngsi-ld/v1/temporal/entities/{V1}"
    assert await speeds(client) == [10, 20, 30]
    now = (await client.get(f"{BASE}/entities/{V1}", headers=H)).json()
    assert now["speed"]["value"] == 30 and now["speed"]["observedAt"] == "2024-01-01T02:00:00.000Z"
    assert now["isParked"] == {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:P1",
                               "observedAt": "2024-01-01T00:30:00.000Z"}
    again = {"id": V1, "type": "Vehicle", "speed": instances((25, "01:30"), (30, "02:00"))}
    r = await client.post(T, content=ld(again), headers=LD)
    assert r.status_code == 204, r.text
    assert await speeds(client) == [10, 20, 25, 30]  # the repeated 02:00 instance is stored once
    parked = (await client.get(f"{T}/{V1}", params={"attrs": "isParked"}, headers=H)).json()["isParked"]
    assert parked == [{"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:P1",
                       "observedAt": "2024-01-01T00:30:00.000Z"}]
    events = await runtime.store.events(type_prefix="command.entity.temporal_write")
    assert [(e.data["created"], e.data["instances"]) for e in events] == [(True, 4), (False, 2)]


async def test_add_attribute_instances(history: httpx.AsyncClient) -> None:
    r = await history.post(f"{T}/{V1}/attrs", headers=H, json={
        "speed": instances((5, "00:30"))[0],  # older than the current value (40 at 03:00)
        "fuel": instances((0.5, "02:30"), (0.4, "03:30")),  # a new attribute
    })
    assert r.status_code == 204, r.text
    assert await speeds(history) == [10, 5, 20, 30, 40]
    now = (await history.get(f"{BASE}/entities/{V1}", params={"options": "keyValues"}, headers=H)).json()
    assert now["speed"] == 40 and now["fuel"] == 0.4
    r = await history.get(f"{T}/{V1}", params={"attrs": "fuel", "options": "temporalValues"}, headers=H)
    assert r.json()["fuel"]["values"] == [[0.5, "2024-01-01T02:30:00.000Z"], [0.4, "2024-01-01T03:30:00.000Z"]]
    r = await history.post(f"{T}/{V1}/attrs", headers=H, json={"speed": instances((50, "04:00"))})
    assert r.status_code == 204
    assert (await history.get(f"{BASE}/entities/{V1}", params={"options": "keyValues"}, headers=H)).json()["speed"] == 50


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", T, {"id": V1, "type": "Vehicle", "speed": {"type": "Property", "value": 1}}, 400),  # no observedAt
    ("POST", T, {"id": V1, "type": "Vehicle", "speed": [{"type": "Property", "value": 1, "observedAt": "soon"}]}, 400),
    ("POST", T, {"id": V1, "type": "Vehicle", "speed": [3]}, 400),
    ("POST", T, {"id": V1, "type": "Vehicle", "speed": []}, 400),
    ("POST", T, {"id": "not a uri", "type": "Vehicle"}, 400),
    ("POST", T, {"id": "urn:ngsi-ld:Vehicle:V9", "speed": instances((1, "00:00"))}, 400),  # no type
    ("POST", T, [{"id": V1, "type": "Vehicle"}], 400),
    ("POST", T, {"id": V1, "type": "Bus", "speed": instances((1, "00:00"))}, 400),  # V1 is a Vehicle
    ("POST", f"{T}/urn:ngsi-ld:Vehicle:none/attrs", {"speed": instances((1, "00:00"))}, 404),
    ("POST", f"{T}/{V1}/attrs", {"type": "Vehicle"}, 400),  # no instances
    ("POST", f"{T}/{V1}/attrs", {"speed": instances((1, "00:00"))[0] | {"datasetId": "not a uri"}}, 400),
    ("DELETE", f"{T}/{V1}", None, 405),
])
async def test_temporal_write_errors(history: httpx.AsyncClient, method: str, path: str, body: object,
                                     status: int) -> None:
    content = None if body is None else ld(body) if isinstance(body, dict) and path == T else None
    kwargs: dict = {"content": content, "headers": LD} if content is not None else {"json": body, "headers": H}
    r = await history.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json") or "problem" in r.headers["content-type"]
    problem = r.json()
    assert problem["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/") and problem["title"]
    assert await speeds(history) == [10, 20, 30, 40]  # nothing was written
