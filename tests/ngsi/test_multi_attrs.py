"""Conformance: multi-attributes (ETSI GS CIM 009 §4.5.5, datasetId) — 11 cases.

An attribute may hold several instances, told apart by datasetId (at most one without: the default
instance). Create with an array of instances and get the array back; keyValues gives the values; a
single instance with a datasetId round-trips as an object; PATCH /attrs/{attr} and PUT target the instance
the body's datasetId names; DELETE takes ?datasetId= or ?deleteAll=true; q matches any instance; append
(POST /attrs) adds an instance; invalid and duplicate datasetIds are BadRequestData; history is kept per
instance and the temporal API returns each instance's values with its datasetId; a subscription watching
the attribute is notified when any instance changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from ngsi_support import BASE

V = "urn:ngsi-ld:Vehicle:M1"
E = f"{BASE}/entities/{V}"
J = {"Content-Type": "application/json"}
GPS = "urn:ngsi-ld:Dataset:gps"
RADAR = "urn:ngsi-ld:Dataset:radar"


async def create(client: httpx.AsyncClient, entity: dict[str, Any]) -> None:
    r = await client.post(f"{BASE}/entities", json=entity, headers=J)
    assert r.status_code == 201, r.text


def speeds(default: float = 50, gps: float = 52, radar: float | None = 49) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "Property", "value": default},
                                 {"type": "Property", "value": gps, "datasetId": GPS}]
    if radar is not None:
        out.append({"type": "Property", "value": radar, "datasetId": RADAR, "observedAt": "2024-01-01T00:00:00.000Z"})
    return out


async def multi(client: httpx.AsyncClient) -> None:
    await create(client, {"id": V, "type": "Vehicle", "speed": speeds(),
                          "brandName": {"type": "Property", "value": "Acme"}})


async def speed(client: httpx.AsyncClient, **params: str) -> Any:
    r = await client.get(E, params=params)
    assert r.status_code == 200, r.text
    return r.json().get("speed")


async def test_create_and_retrieve_every_instance(client: httpx.AsyncClient) -> None:
    await multi(client)
    got = await speed(client)
    assert got == speeds()  # default instance first, then by datasetId
    assert await speed(client, options="keyValues") == [50, 52, 49]
    concise = await speed(client, options="concise")
    assert concise[0] == 50 and concise[1] == {"value": 52, "datasetId": GPS}
    r = await client.get(E, params={"attrs": "brandName"})
    assert "speed" not in r.json()


async def test_single_instance_with_dataset_round_trips(client: httpx.AsyncClient) -> None:
    one = {"type": "Property", "value": 7, "datasetId": GPS}
    await create(client, {"id": V, "type": "Vehicle", "speed": one})
    assert await speed(client) == one
    r = await client.patch(f"{E}/attrs/speed", json={"value": 8}, headers=J)
    assert r.status_code == 404 and r.json()["type"].endswith("ResourceNotFound")  # no default instance
    r = await client.patch(f"{E}/attrs/speed", json={"value": 8, "datasetId": GPS}, headers=J)
    assert r.status_code == 204
    assert await speed(client) == {**one, "value": 8}


async def test_partial_update_targets_the_named_instance(client: httpx.AsyncClient) -> None:
    await multi(client)
    assert (await client.patch(f"{E}/attrs/speed", json={"value": 60, "datasetId": GPS}, headers=J)).status_code == 204
    assert (await client.patch(f"{E}/attrs/speed", json={"value": 40}, headers=J)).status_code == 204
    assert await speed(client, options="keyValues") == [40, 60, 49]
    r = await client.patch(f"{E}/attrs/speed", json={"value": 1, "datasetId": "urn:ngsi-ld:Dataset:none"}, headers=J)
    assert r.status_code == 404 and "urn:ngsi-ld:Dataset:none" in r.json()["detail"]


async def test_replace_one_instance(client: httpx.AsyncClient) -> None:
    await multi(client)
    r = await client.put(f"{E}/attrs/speed", json={"type": "Property", "value": 3, "datasetId": RADAR}, headers=J)
    assert r.status_code == 204
    assert (await speed(client))[2] == {"type": "Property", "value": 3, "datasetId": RADAR}


async def test_delete_one_instance_or_all(client: httpx.AsyncClient) -> None:
    await multi(client)
    assert (await client.delete(f"{E}/attrs/speed", params={"datasetId": GPS})).status_code == 204
    assert await speed(client, options="keyValues") == [50, 49]
    assert (await client.delete(f"{E}/attrs/speed", params={"datasetId": GPS})).status_code == 404
    assert (await client.delete(f"{E}/attrs/speed")).status_code == 204  # the default instance
    assert await speed(client, options="keyValues") == 49
    r = await client.delete(f"{E}/attrs/speed", params={"datasetId": "not a uri"})
    assert r.status_code == 400
    await client.post(f"{E}/attrs", json={"speed": speeds()}, headers=J)
    assert (await client.delete(f"{E}/attrs/speed", params={"deleteAll": "true"})).status_code == 204
    assert await speed(client) is None


async def test_q_matches_any_instance(client: httpx.AsyncClient) -> None:
    await multi(client)
    await create(client, {"id": "urn:ngsi-ld:Vehicle:M2", "type": "Vehicle", "speed": {"type": "Property", "value": 10}})

    async def ids(q: str) -> list[str]:
        r = await client.get(f"{BASE}/entities", params={"type": "Vehicle", "q": q})
        assert r.status_code == 200, r.text
        return sorted(e["id"] for e in r.json())

    assert await ids("speed==52") == [V]  # only the gps instance holds 52
    assert await ids("speed<20") == ["urn:ngsi-ld:Vehicle:M2"]
    assert await ids("speed>45") == [V]
    assert await ids("speed==49..51") == [V]
    assert await ids("speed.datasetId==\"urn:ngsi-ld:Dataset:radar\"") == [V]


async def test_append_adds_an_instance(client: httpx.AsyncClient) -> None:
    await create(client, {"id": V, "type": "Vehicle", "speed": {"type": "Property", "value": 1}})
    r = await client.post(f"{E}/attrs", json={"speed": {"type": "Property", "value": 2, "datasetId": GPS}}, headers=J)
    assert r.status_code == 204
    assert await speed(client, options="keyValues") == [1, 2]
    r = await client.post(f"{E}/attrs", params={"options": "noOverwrite"},
                          json={"speed": {"type": "Property", "value": 3, "datasetId": GPS}}, headers=J)
    assert r.status_code == 207 and r.json()["notUpdated"][0]["attributeName"].endswith("speed")
    assert await speed(client, options="keyValues") == [1, 2]


async def test_bad_dataset_ids_are_bad_request_data(client: httpx.AsyncClient) -> None:
    for body in ({"speed": [{"type": "Property", "value": 1, "datasetId": "no uri"}]},
                 {"speed": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2}, {
                     "type": "Property", "value": 3, "datasetId": GPS}]},
                 {"speed": [{"type": "Property", "value": 1, "datasetId": GPS},
                            {"type": "Property", "value": 2, "datasetId": GPS}]}):
        r = await client.post(f"{BASE}/entities", json={"id": V, "type": "Vehicle", **body}, headers=J)
        assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData"), r.text
    r = await client.get(f"{BASE}/entities/{V}")
    assert r.status_code == 404  # nothing was created


async def test_batch_upsert_and_types_list_names_once(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/entityOperations/upsert", json=[{"id": V, "type": "Vehicle", "speed": speeds()}],
                          headers=J)
    assert r.status_code in (201, 204), r.text
    assert await speed(client, options="keyValues") == [50, 52, 49]
    attrs = (await client.get(f"{BASE}/attributes")).json()
    names = attrs["attributeList"] if isinstance(attrs, dict) else attrs
    assert "speed" in names and not any(" " in n for n in names)


async def test_history_per_instance(client: httpx.AsyncClient) -> None:
    await multi(client)
    for gps in (53, 54):
        r = await client.patch(f"{E}/attrs/speed", json={"value": gps, "datasetId": GPS,
                                                         "observedAt": f"2024-01-01T00:0{gps - 50}:00Z"}, headers=J)
        assert r.status_code == 204
    t = f"{BASE}/temporal/entities/{V}"
    r = await client.get(t, params={"attrs": "speed"})
    assert r.status_code == 200, r.text
    by_ds: dict[Any, list[Any]] = {}
    for inst in r.json()["speed"]:
        by_ds.setdefault(inst.get("datasetId"), []).append(inst["value"])
    assert sorted(by_ds[GPS]) == [52, 53, 54] and by_ds[RADAR] == [49] and by_ds[None] == [50]
    values = (await client.get(t, params={"attrs": "speed", "options": "temporalValues"})).json()["speed"]
    assert [v.get("datasetId") for v in values] == [None, GPS, RADAR]
    assert sorted(x[0] for x in values[1]["values"]) == [52, 53, 54]
    r = await client.post(f"{t}/attrs", json={"speed": [{"type": "Property", "value": 48, "datasetId": RADAR,
                                                         "observedAt": "2024-01-02T00:00:00Z"}]}, headers=J)
    assert r.status_code == 204, r.text
    values = (await client.get(t, params={"attrs": "speed", "options": "temporalValues"})).json()["speed"]
    assert sorted(x[0] for x in values[2]["values"]) == [48, 49]


async def test_watched_attribute_notifies_on_any_instance(client: httpx.AsyncClient, runtime: Any) -> None:
    await multi(client)
    sent: list[bytes] = []

    class Capture:
        async def post(self, uri: str, content: bytes, headers: dict[str, str]) -> Any:
            sent.append(content)
            return type("Answer", (), {"status_code": 204})()

        async def aclose(self) -> None:
            pass

    runtime.ports.ngsi_notifier.client = Capture()
    r = await client.post(f"{BASE}/subscriptions", json={
        "type": "Subscription", "entities": [{"type": "Vehicle"}], "watchedAttributes": ["speed"],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}, headers=J)
    assert r.status_code == 201, r.text
    assert (await client.patch(f"{E}/attrs/speed", json={"value": 70, "datasetId": RADAR}, headers=J)).status_code == 204
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.05)
    assert sent and b'"value":70' in sent[-1] and RADAR.encode() in sent[-1]
