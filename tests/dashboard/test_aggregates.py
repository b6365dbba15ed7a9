"""The dashboard's own read endpoints (citybrain/dashboard/web.py), in process: case board, map layers of open
cases and resources, the checked ledger checkpoint, place trends and an area's reports and directives."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from citybrain.ledger.checkpoint import Checkpoint
from citybrain.runtime import CityBrain
from citybrain.store import PutDoc
from citybrain.testing import TestCity, running

# city dc > districts d1, d2 > a subdistrict each (s1, s2) > community m1 / m2 > one grid cell each, g1 west of g2
TOWN = TestCity(cols=2, rows=1, k=1, districts=2, city="urn:ngsi-ld:City:dc", cell_id="urn:ngsi-ld:Grid:g{n}",
                origin=(116.0, 39.9), size=(0.1, 0.1))
CITY, D1, D2 = TOWN.city, TOWN.district(0), TOWN.district(1)
M1, M2 = TOWN.community(0), TOWN.community(1)
G1, G2 = TOWN.cell(0), TOWN.cell(1)


def actor(name: str) -> dict[str, str]:
    return {"x-citybrain-actor": name}


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[tuple[CityBrain, httpx.AsyncClient]]:
    """Two districts, one community and one cell each (g1 west, g2 east), with the whole API."""
    async with running(TOWN, directory=tmp_path) as (rt, client, _):
        yield rt, client


async def report(client: httpx.AsyncClient, lon: float, text: str, channel: str = "grid") -> dict[str, Any]:
    r = await client.post("/api/v1/cases", json={"category": "C0110", "channel": channel, "lon": lon, "lat": 39.95,
                                                 "description": text}, headers=actor("grid:x"))
    assert r.status_code == 201, r.text
    return r.json()


async def test_case_board_counts_states_and_puts_overdue_first(city) -> None:
    rt, client = city
    west = [await report(client, 116.05, f"lamp {i}") for i in range(3)]  # trusted channel: dispatched at once
    east = await report(client, 116.15, "lamp east")
    held = await report(client, 116.05, "hotline report", channel="hotline")  # stays in intake
    done = west[0]["id"]
    for step, who in (("accept", "dept:urban:zhao"), ("feedback", "dept:urban:zhao"), ("verify", "supervisor:li"),
                      ("close", "supervisor:li")):
        r = await client.post(f"/api/v1/cases/{done}/{step}", json={}, headers=actor(who))
        assert r.status_code == 200, r.text
    late = west[2]["id"]  # the oldest open one is not overdue, the newest one is
    await rt.execute("case.escalate", {"id": late, "task": "T1", "level": 1}, rt.context("system:deadline-checker"))

    board = (await client.get("/api/v1/dashboard/cases", params={"per_state": 1})).json()
    cols = {c["state"]: c for c in board["states"]}
    listed = (await client.get("/api/v1/cases", params={"limit": 1000})).json()
    for state, col in cols.items():
        assert col["count"] == sum(1 for c in listed if c["state"] == state), state
    assert cols["dispatched"]["count"] == 3 and cols["closed"]["count"] == 1 and cols["intake"]["count"] == 1
    assert cols["dispatched"]["overdue"] == 1 and board["overdue"] == 1 and board["open"] == 4 and board["total"] == 5
    # only one card per column asked for: the overdue case must be the one shown
    assert [c["id"] for c in cols["dispatched"]["cases"]] == [late] and cols["dispatched"]["cases"][0]["overdue"]
    assert [s["state"] for s in board["states"]][:9] == ["intake", "filed", "dispatched", "handling", "feedback",
                                                        "verified", "closed", "evaluated", "suspended"]
    # the community's board holds only its own cases
    east_board = (await client.get("/api/v1/dashboard/cases", params={"within": M2})).json()
    ids = {c["id"] for col in east_board["states"] for c in col["cases"]}
    assert ids == {east["id"]} and east_board["total"] == 1

    # open cases on the map: reported point, closed ones left out, the area filter applies
    fc = (await client.get("/api/v1/map/cases")).json()
    assert {f["id"] for f in fc["features"]} == {west[1]["id"], late, east["id"], held["id"]}
    pt = next(f for f in fc["features"] if f["id"] == east["id"])
    assert pt["geometry"]["coordinates"] == [116.15, 39.95] and pt["properties"]["state"] == "dispatched"
    assert next(f for f in fc["features"] if f["id"] == late)["properties"]["overdue"] is True
    fc2 = (await client.get("/api/v1/map/cases", params={"within": M2})).json()
    assert [f["id"] for f in fc2["features"]] == [east["id"]]
    assert (await client.get("/api/v1/dashboard/cases", params={"within": "urn:ngsi-ld:Community:nope"})).status_code == 404


async def test_resources_layer_is_confined_to_the_area(city) -> None:
    rt, client = city
    for rid, lon in (("west-team", 116.05), ("east-bus", 116.15), ("outside", 117.5)):
        await rt.execute("entity.write", {"entity": {
            "id": f"urn:ngsi-ld:Resource:{rid}", "type": "Resource",
            "location": {"type": "Point", "coordinates": [lon, 39.95]},
            "resourceType": {"type": "Property", "value": "team"},
            "capability": {"type": "Property", "value": ["rescue"]}}})
    listed = {r["id"] for r in (await client.get("/api/v1/resources")).json()}
    everything = (await client.get("/api/v1/map/resources")).json()["features"]
    assert {f["id"] for f in everything} == listed and len(listed) == 3
    by_id = {f["id"]: f["properties"]["place"] for f in everything}
    assert by_id["urn:ngsi-ld:Resource:west-team"] == G1 and by_id["urn:ngsi-ld:Resource:outside"] is None
    east = (await client.get("/api/v1/map/resources", params={"within": D2})).json()["features"]
    assert [f["id"] for f in east] == ["urn:ngsi-ld:Resource:east-bus"]


async def test_checkpoint_is_opened_and_checked(city) -> None:
    rt, client = city
    ledger = rt.ports.ledger
    await ledger.flush()
    got = (await client.get("/api/v1/dashboard/checkpoint")).json()
    note = (await client.get("/api/v1/ledger/checkpoint")).text
    lines = note.split("\n")
    assert got["verified"] is True and got["signature_ok"] and got["root_matches_log"]
    assert got["size"] == int(lines[1]) and got["root"] == lines[2] and got["origin"] == lines[0] == "citybrain/city"
    assert got["note"] == note and got["size"] > 0
    # a checkpoint whose root is not the log's root is shown as not verified (signed, but wrong)
    bad = Checkpoint(ledger.log.origin, ledger.log.latest_size, b"\x00" * 32).sign(ledger.signer)
    saved = ledger.log.latest
    ledger.log.latest = bad
    try:
        got = (await client.get("/api/v1/dashboard/checkpoint")).json()
        assert got["verified"] is False and got["signature_ok"] and not got["root_matches_log"]
        assert got["root"] == base64.b64encode(b"\x00" * 32).decode() and "differs" in got["error"]
        ledger.log.latest = saved.replace(lines[2], base64.b64encode(b"\x01" * 32).decode())  # signature broken
        got = (await client.get("/api/v1/dashboard/checkpoint")).json()
        assert got["verified"] is False and got["error"]
    finally:
        ledger.log.latest = saved


async def test_place_trend_is_hourly_mean_and_max_over_its_sensors(city) -> None:
    _, client = city
    for sid, lon in (("a", 116.02), ("b", 116.08), ("c", 116.15)):
        r = await client.post("/api/v1/entities", json={"id": f"urn:ngsi-ld:AirQualityObserved:{sid}",
                                                         "type": "AirQualityObserved",
                                                         "location": {"type": "Point", "coordinates": [lon, 39.95]}})
        assert r.status_code == 201, r.text
    rows = [("a", "2016-07-20T00:00:00Z", 10), ("a", "2016-07-20T01:00:00Z", 30), ("b", "2016-07-20T00:30:00Z", 20),
            ("b", "2016-07-20T01:00:00Z", 50), ("c", "2016-07-20T01:00:00Z", 999)]
    r = await client.post("/api/v1/observations", json=[
        {"entity": f"urn:ngsi-ld:AirQualityObserved:{s}", "observedAt": at, "values": {"pm25": v}, "unitCode": "GQ"}
        for s, at, v in rows])
    assert r.status_code == 200, r.text
    got = (await client.get("/api/v1/dashboard/trend", params={"place": D1, "attr": "pm25"})).json()
    assert got["sensors"] == 2 and got["unit"] == "GQ"
    assert got["series"] == [
        {"time": "2016-07-20T00:00:00Z", "mean": 15.0, "max": 20, "min": 10, "n": 2},
        {"time": "2016-07-20T01:00:00Z", "mean": 40.0, "max": 50, "min": 30, "n": 2}]
    city_wide = (await client.get("/api/v1/dashboard/trend", params={"place": CITY, "attr": "pm25", "last": 1})).json()
    assert city_wide["sensors"] == 3 and city_wide["series"][-1]["max"] == 999
    assert (await client.get("/api/v1/dashboard/trend", params={"place": "urn:ngsi-ld:Grid:x", "attr": "pm25"})).status_code == 404


async def test_federation_view_lists_an_areas_reports_and_waiting_directives(city) -> None:
    rt, client = city
    fed = rt.ports.federation
    fed.known.update({"n1": {"node": "n1", "area": M1}, "n2": {"node": "n2", "area": M2}})
    await rt.store.apply([
        PutDoc("fed_reports", "r1", {"id": "r1", "text": "pumps ready", "type": "adhoc", "area": M1, "sender": "n1",
                                     "at": "2026-03-02T01:00:00.000Z"}),
        PutDoc("fed_reports", "r2", {"id": "r2", "text": "all quiet", "type": "scheduled", "area": M2, "sender": "n2",
                                     "at": "2026-03-02T01:05:00.000Z"}),
        PutDoc("fed_directives", "d1", {"id": "d1", "kind": "directive", "text": "check drains", "target": CITY,
                                        "nodes": ["n1", "n2"], "issued_at": "2026-03-02T00:00:00.000Z"}),
        PutDoc("fed_receipts", "d1:n2:read", {"directive": "d1", "node": "n2", "state": "read", "at": "t1"}),
        PutDoc("fed_receipts", "d1:n2:done", {"directive": "d1", "node": "n2", "state": "done", "at": "t2"}),
    ])
    whole = (await client.get("/api/v1/dashboard/federation")).json()
    assert [r["id"] for r in whole["reports"]] == ["r2", "r1"]
    (d,) = whole["directives"]
    assert d["read"] == 1 and d["done"] == 1 and d["waiting"] == ["n1"] and whole["directives_waiting"] == 1
    west = (await client.get("/api/v1/dashboard/federation", params={"within": M1})).json()
    assert [r["id"] for r in west["reports"]] == ["r1"]
    assert west["directives"][0]["waiting"] == ["n1"] and list(west["directives"][0]["nodes"]) == ["n1"]
    east = (await client.get("/api/v1/dashboard/federation", params={"within": M2})).json()
    assert [r["id"] for r in east["reports"]] == ["r2"]
    assert east["directives"][0]["waiting"] == [] and east["directives_waiting"] == 0


async def test_ingest_rate_is_not_zero_on_the_first_reading(city) -> None:
    _, client = city
    r = await client.post("/api/v1/entities", json={"id": "urn:ngsi-ld:WeatherObserved:w", "type": "WeatherObserved",
                                                     "location": {"type": "Point", "coordinates": [116.05, 39.95]}})
    assert r.status_code == 201
    r = await client.post("/api/v1/observations", json=[
        {"entity": "urn:ngsi-ld:WeatherObserved:w", "observedAt": f"2016-07-20T0{h}:00:00Z", "values": {"temperature": 20 + h}}
        for h in range(5)])
    assert r.status_code == 200
    import asyncio

    await asyncio.sleep(1.05)
    s = (await client.get("/api/v1/dashboard/summary")).json()
    assert s["observations_total"] == 5 and s["observations_per_min"] > 0


async def test_a_community_scoped_identity_sees_only_its_area(tmp_path: Path) -> None:
    async with running(TOWN, directory=tmp_path, auth="on") as (rt, c, _):
        ctx = rt.context("admin:test")
        await rt.execute("user.add", {"name": "m1-op", "role": "community_operator", "place": M1}, ctx)
        key = {"X-API-Key": (await rt.execute("user.key", {"name": "m1-op"}, ctx))["key"]}
        for lon, text in ((116.05, "west"), (116.15, "east")):
            await rt.execute("case.intake", {"category": "C0110", "channel": "grid", "lon": lon, "lat": 39.95,
                                             "description": text}, rt.context("grid:x"))
        assert (await c.get("/api/v1/dashboard/cases")).status_code == 401  # deny by default
        board = (await c.get("/api/v1/dashboard/cases", headers=key)).json()  # defaults to the own area
        assert board["total"] == 1 and board["states"][0]["cases"][0]["title"]
        assert [f["properties"]["place"] for f in (await c.get("/api/v1/map/cases", headers=key)).json()["features"]] == [G1]
        for url in ("/api/v1/dashboard/cases", "/api/v1/map/cases", "/api/v1/map/resources", "/api/v1/dashboard/federation"):
            assert (await c.get(url, params={"within": M2}, headers=key)).status_code == 403, url
        r = await c.get("/api/v1/dashboard/trend", params={"place": CITY, "attr": "pm25"}, headers=key)
        assert r.status_code == 403
        assert (await c.get("/api/v1/stream", params={"scope": M2}, headers=key)).status_code == 403
        assert (await c.get("/api/v1/stream", params={"scope": CITY}, headers=key)).status_code == 403
