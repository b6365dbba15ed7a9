"""A community node cannot read or change another community's data through any mounted API family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.model.entity import Entity
from citybrain.runtime import CityBrain
from citybrain.store import open_store
from citybrain.store.base import UpsertEntity

A, B = "urn:ngsi-ld:Community:a", "urn:ngsi-ld:Community:b"
GA, GB = "urn:ngsi-ld:Grid:ga", "urn:ngsi-ld:Grid:gb"
WA, WB = "urn:ngsi-ld:WeatherObserved:wa", "urn:ngsi-ld:WeatherObserved:wb"


def square(x: float) -> dict[str, object]:
    """A 0.1° square cell west-east at longitude x."""
    return {"type": "Polygon", "coordinates": [[[x, 39.0], [x + 0.1, 39.0], [x + 0.1, 39.1], [x, 39.1], [x, 39.0]]]}


PLACES = [("urn:ngsi-ld:City:c", "City", None, square(116.0)), ("urn:ngsi-ld:District:d", "District", "urn:ngsi-ld:City:c", None),
          ("urn:ngsi-ld:Subdistrict:s", "Subdistrict", "urn:ngsi-ld:District:d", None),
          (A, "Community", "urn:ngsi-ld:Subdistrict:s", square(116.0)), (B, "Community", "urn:ngsi-ld:Subdistrict:s", square(116.2)),
          (GA, "Grid", A, square(116.0)), (GB, "Grid", B, square(116.2))]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A community node for A whose store also holds B's data (as if copied from the city)."""
    path = str(tmp_path / "a.db")
    store = open_store(path)
    await store.open()
    now = "2026-01-01T00:00:00Z"
    ops = [UpsertEntity(Entity(id=i, type=t, place=p, location=loc, attrs={"name": {"type": "Property", "value": i}},
                               created_at=now, modified_at=now)) for i, t, p, loc in PLACES]
    for sensor, grid, x in ((WA, GA, 116.05), (WB, GB, 116.25)):
        ops.append(UpsertEntity(Entity(id=sensor, type="WeatherObserved", place=grid, created_at=now, modified_at=now,
                                       location={"type": "Point", "coordinates": [x, 39.05]},
                                       attrs={"temperature": {"type": "Property", "value": 20}})))
    await store.apply(ops)
    await store.close()
    rt = CityBrain(Settings(store=path, bus="memory", node_id="a", role="community", area=A))
    await rt.start()
    app = create_app(rt, manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await rt.stop()


def mounted(client: httpx.AsyncClient, prefix: str) -> bool:
    """Tell whether an API family is mounted on the node."""
    app = client.app  # type: ignore[attr-defined]
    paths = [*app.openapi()["paths"], *(getattr(r, "path", "") for r in app.routes)]
    return any(p.startswith(prefix) for p in paths)


async def test_own_area_is_served(node: httpx.AsyncClient) -> None:
    assert (await node.get(f"/api/v1/entities/{WA}")).status_code == 200
    listed = (await node.get("/api/v1/entities", params={"type": "WeatherObserved"})).json()
    assert [e["id"] for e in listed] == [WA]


async def test_core_model_family(node: httpx.AsyncClient) -> None:
    for path in (f"/api/v1/entities/{WB}", f"/api/v1/entities/{WB}/history", f"/api/v1/places/{B}",
                 f"/api/v1/places/{GB}"):
        assert (await node.get(path)).status_code == 403, path
    assert (await node.get("/api/v1/entities", params={"place": B})).status_code == 403
    assert B not in (await node.get("/api/v1/places")).text
    assert (await node.patch(f"/api/v1/entities/{WB}/attrs", json={"temperature": {"type": "Property", "value": 99}})
            ).status_code == 403
    assert (await node.delete(f"/api/v1/entities/{WB}")).status_code == 403
    new = {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight", "location": {"type": "Point", "coordinates": [116.25, 39.05]}}
    assert (await node.post("/api/v1/entities", json=new)).status_code == 403  # located in B by its point
    assert (await node.post("/api/v1/entities", json=dict(new, place=GB))).status_code == 403
    r = await node.post("/api/v1/commands/entity.update", json={"id": WB, "attrs": {"t": {"type": "Property", "value": 1}}})
    assert r.status_code == 403


async def test_ingest_family(node: httpx.AsyncClient) -> None:
    r = await node.post("/api/v1/observations", json=[{"entity": WB, "observedAt": "2026-01-01T01:00:00Z",
                                                       "values": {"temperature": 99}}])
    assert r.status_code == 403
    ok = await node.post("/api/v1/observations", json=[{"entity": WA, "observedAt": "2026-01-01T01:00:00Z",
                                                        "values": {"temperature": 21}}])
    assert ok.status_code == 200


async def test_ngsi_family(node: httpx.AsyncClient) -> None:
    if not mounted(node, "/ngsi-ld/v1"):
        pytest.skip("NGSI-LD API not mounted")
    assert (await node.get(f"/ngsi-ld/v1/entities/{WB}")).status_code == 403
    assert (await node.get(f"/ngsi-ld/v1/temporal/entities/{WB}")).status_code == 403
    listed = await node.get("/ngsi-ld/v1/entities", params={"type": "WeatherObserved"})
    assert WB not in listed.text and (listed.status_code != 200 or WA in listed.text)
    assert (await node.patch(f"/ngsi-ld/v1/entities/{WB}/attrs", json={"temperature": {"type": "Property", "value": 1}},
                             headers={"content-type": "application/json"})).status_code == 403
    assert (await node.delete(f"/ngsi-ld/v1/entities/{WB}")).status_code == 403
    batch = [{"id": "urn:ngsi-ld:Streetlight:y", "type": "Streetlight", "location": {
        "type": "GeoProperty", "value": {"type": "Point", "coordinates": [116.25, 39.05]}}}]
    r = await node.post("/ngsi-ld/v1/entityOperations/upsert", json=batch, headers={"content-type": "application/json"})
    assert r.status_code in (207, 400, 403) and "urn:ngsi-ld:Streetlight:y" not in (await node.get(
        "/api/v1/entities", params={"type": "Streetlight"})).text


async def test_situation_dashboard_and_pages(node: httpx.AsyncClient) -> None:
    for prefix, path in (("/api/v1/situation", f"/api/v1/situation/{B}"), ("/api/v1/risk", f"/api/v1/risk/{B}"),
                         ("/community", f"/community/{B}")):
        if mounted(node, prefix):
            assert (await node.get(path)).status_code == 403, path
    if mounted(node, "/api/v1/map/places"):
        for level in ("Community", "Grid"):
            assert B not in (await node.get("/api/v1/map/places", params={"level": level})).text
    if mounted(node, "/api/v1/map/sensors"):
        assert WB not in (await node.get("/api/v1/map/sensors")).text
    if mounted(node, "/api/v1/situation"):
        assert GB not in (await node.get("/api/v1/situation")).text


async def test_cases_and_open311_families(node: httpx.AsyncClient) -> None:
    if mounted(node, "/api/v1/cases"):
        r = await node.get("/api/v1/cases", params={"place": B})
        assert r.status_code == 403
        assert (await node.post("/api/v1/cases", json={"title": "x", "place": GB})).status_code == 403
    if mounted(node, "/open311/v2"):
        r = await node.get("/open311/v2/requests.json")
        assert B not in r.text and GB not in r.text


async def test_federation_family_is_local(node: httpx.AsyncClient) -> None:
    assert (await node.get("/api/v1/reports")).json() == []
    r = await node.post("/api/v1/reports", json={"text": "mine", "data": {"place": GB}})
    assert r.status_code == 403  # a report about another community's cell is not this node's to make
    assert (await node.post("/api/v1/reports", json={"text": "mine", "data": {"place": GA}})).status_code == 201
    assert len((await node.get("/api/v1/outbox")).json()["messages"]) >= 2  # hello + the report, link offline
