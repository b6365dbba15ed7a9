"""The entity directory shared by the processes of a node — 6 cases, each on two runtimes (PostgreSQL + NATS)
and on the embedded default (SQLite + in-process bus, one runtime standing for both).

An entity created through one process can be changed, deleted and observed through the other; a create of
an id taken on the other process is AlreadyExists, and an id deleted there can be created again; a miss is
read through to the store once per observation batch while hits stay in memory; places made on one
process are usable on the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from shared_node import KINDS, Node, eventually, open_node

from citybrain.model.entity import Entity
from citybrain.store import UpsertEntity

BASE = "/ngsi-ld/v1"
SENSOR = "urn:ngsi-ld:AirQualityObserved:s1"


@pytest.fixture(params=[pytest.param(k, marks=[pytest.mark.postgres, pytest.mark.nats]) if k.startswith("postgres")
                        else k for k in KINDS])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(request.param, tmp_path) as n:
        yield n


def sensor(entity_id: str = SENSOR, pm25: float = 10.0) -> dict[str, Any]:
    return {"id": entity_id, "type": "AirQualityObserved", "pm25": {"type": "Property", "value": pm25}}


def reading(entity_id: str = SENSOR, value: float = 42.0) -> dict[str, Any]:
    return {"entity": entity_id, "observedAt": "2026-01-01T00:00:00Z", "values": {"pm25": value}}


async def test_created_on_a_changed_and_deleted_on_b(node: Node) -> None:
    a, b = node.a, node.b
    assert (await a.http.post(f"{BASE}/entities", json=sensor())).status_code == 201
    # straight away, without waiting for b to hear of it: b reads the store on a miss
    r = await b.http.patch(f"{BASE}/entities/{SENSOR}/attrs", json={"pm25": {"type": "Property", "value": 11}})
    assert r.status_code == 204, r.text
    assert (await a.http.get(f"{BASE}/entities/{SENSOR}")).json()["pm25"]["value"] == 11
    assert (await b.http.delete(f"{BASE}/entities/{SENSOR}")).status_code == 204
    assert (await a.http.get(f"{BASE}/entities/{SENSOR}")).status_code == 404
    r = await a.http.patch(f"{BASE}/entities/{SENSOR}/attrs", json={"pm25": {"type": "Property", "value": 12}})
    assert r.status_code == 404 and r.json()["type"].endswith("ResourceNotFound")
    # a forgets the id (the delete event), and then refuses readings for it
    await eventually(lambda: SENSOR not in a.rt.ports.directory.types, what="a forgets the deleted id")
    report = await a.rt.ports.ingest.submit([reading()])
    assert report.stored == 0 and report.rejected[0].field == "entity"


async def test_observation_for_an_entity_made_on_a_is_accepted_on_b(node: Node) -> None:
    await node.a.rt.execute("entity.write", {"entity": sensor(), "mode": "create"})
    report = await node.b.rt.ports.ingest.submit([reading(value=77.0)])
    assert report.stored == 1 and report.rejected == []
    got = await node.a.rt.store.get_entity(SENSOR)
    assert got is not None and got.value("pm25") == 77.0


async def test_create_on_b_of_an_id_taken_on_a(node: Node) -> None:
    a, b = node.a, node.b
    assert (await a.http.post(f"{BASE}/entities", json=sensor())).status_code == 201
    r = await b.http.post(f"{BASE}/entities", json=sensor(pm25=1.0))
    assert r.status_code == 409 and r.json()["type"].endswith("AlreadyExists")
    # b knows it now; deleted on a, it can be created on b at once, whatever b's memory still says
    await eventually(lambda: SENSOR in b.rt.ports.directory.types, what="b learns of the entity")
    assert (await a.http.delete(f"{BASE}/entities/{SENSOR}")).status_code == 204
    assert (await b.http.post(f"{BASE}/entities", json=sensor(pm25=2.0))).status_code == 201
    assert (await a.http.get(f"{BASE}/entities/{SENSOR}")).json()["pm25"]["value"] == 2.0
    await eventually(lambda: SENSOR in a.rt.ports.directory.types, what="a learns of the new entity")


async def test_misses_are_one_store_read_per_batch_and_hits_none(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    b = node.b
    # committed by "another process" whose events this one has not seen (written straight to the store)
    ids = [f"urn:ngsi-ld:AirQualityObserved:m{i}" for i in range(20)]
    now = b.rt.now()
    await b.rt.store.apply([UpsertEntity(Entity(id=i, type="AirQualityObserved", created_at=now, modified_at=now),
                                         mode="create") for i in ids])
    assert not any(i in b.rt.ports.directory.types for i in ids)
    reads: list[int] = []
    real = b.rt.store.query_entities

    async def counting(query: Any) -> list[Entity]:
        reads.append(len(query.ids or ()))
        return await real(query)

    monkeypatch.setattr(b.rt.store, "query_entities", counting)
    unknown = "urn:ngsi-ld:AirQualityObserved:nobody"
    report = await b.rt.ports.ingest.submit([reading(i, 1.0) for i in ids] + [reading(unknown)])
    assert report.stored == 20 and [r.index for r in report.rejected] == [20]
    assert reads == [21]  # the 20 misses and the unknown one, in one read
    reads.clear()
    report = await b.rt.ports.ingest.submit([reading(i, 2.0) for i in ids])
    assert report.stored == 20 and reads == []  # hits: memory only


async def test_places_made_on_a_are_usable_on_b(node: Node) -> None:
    a, b = node.a, node.b
    ctx = a.rt.context("test")
    chain = [("City", "urn:ngsi-ld:City:c", None), ("District", "urn:ngsi-ld:District:d", "urn:ngsi-ld:City:c"),
             ("Subdistrict", "urn:ngsi-ld:Subdistrict:s", "urn:ngsi-ld:District:d"),
             ("Community", "urn:ngsi-ld:Community:m", "urn:ngsi-ld:Subdistrict:s")]
    for ptype, pid, parent in chain:
        await a.rt.execute("entity.write", {"entity": {"id": pid, "type": ptype, "place": parent}}, ctx)
    cell = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    grid = "urn:ngsi-ld:Grid:g"
    await a.rt.execute("entity.write", {"entity": {"id": grid, "type": "Grid", "place": "urn:ngsi-ld:Community:m",
                                                   "location": cell}}, ctx)
    # b places a sensor in the cell a made a moment ago (the place is read through to the store)
    await b.rt.execute("entity.write", {"entity": {**sensor(), "place": grid}})
    got = await a.rt.store.get_entity(SENSOR)
    assert got is not None and got.place == grid
    # and, once the events are in, b finds the cell from a point
    places_b = b.rt.ports.places
    await eventually(lambda: grid in places_b and places_b.locate(0.5, 0.5) == grid, what="b's place index has the cell")
    await b.rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:AirQualityObserved:p", "type": "AirQualityObserved",
                                                   "location": {"type": "Point", "coordinates": [0.5, 0.5]}}})
    located = await a.rt.store.get_entity("urn:ngsi-ld:AirQualityObserved:p")
    assert located is not None and located.place == grid
    # a place deleted on a leaves b's index
    await a.rt.execute("entity.delete", {"id": grid})
    await eventually(lambda: grid not in places_b and places_b.locate(0.5, 0.5) is None, what="b forgets the cell")


async def test_restarted_process_knows_what_the_other_did(node: Node) -> None:
    await node.a.rt.execute("entity.write", {"entity": sensor(), "mode": "create"})
    await node.a.rt.execute("entity.write", {"entity": sensor("urn:ngsi-ld:AirQualityObserved:gone"), "mode": "create"})
    await node.a.rt.execute("entity.delete", {"id": "urn:ngsi-ld:AirQualityObserved:gone"})
    b = await node.restart("b")
    directory = b.rt.ports.directory
    assert SENSOR in directory.types and "urn:ngsi-ld:AirQualityObserved:gone" not in directory.types
    assert (await b.rt.ports.ingest.submit([reading()])).stored == 1
