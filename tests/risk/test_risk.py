"""Risk: a cell's level follows the observation that changes it within a second, and names its factors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from citybrain.bus import Message
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.risk.factors import Profile, level_of_score, vulnerability
from citybrain.runtime import CityBrain
from citybrain.testing import Sensor, TestCity, build

RULES = """rules:
  - id: pm25-test
    name: PM2.5 test rule
    category: air.pollution
    quantity: pm25
    levels: {blue: {above: 75}, yellow: {above: 150}, orange: {above: 250}, red: {above: 400}}
  - id: rain-test
    category: flood.waterlogging
    quantity: precipitation
    scope: community
    levels: {orange: {at_least: 1, of: {above: 40}}}
"""
# city bj > district d > subdistrict s > community c1 > cells dense, sparse, mid; an air-quality sensor and a
# weather station in each cell (tests/cases, tests/situation and tests/alerts use this city too)
CELLS = {"dense": {"population": 20000, "elderly": 5000, "children": 2400, "lowLying": True, "oldBuildings": 0.7},
         "sparse": {"population": 1500, "elderly": 120, "children": 100, "lowLying": False, "oldBuildings": 0.1},
         "mid": {"population": 8000, "elderly": 1200}}
NAMES = list(CELLS)
TOWN = TestCity(cols=3, rows=1, k=3, districts=1, city="urn:ngsi-ld:City:bj", district_id="urn:ngsi-ld:District:d",
                subdistrict_id="urn:ngsi-ld:Subdistrict:s", community_id="urn:ngsi-ld:Community:c{n}",
                cell_id=lambda i, j: f"urn:ngsi-ld:Grid:{NAMES[i]}", cell_attrs=lambda i, j: CELLS[NAMES[i]],
                geometry=False, sensors=(Sensor("AirQualityObserved"), Sensor("WeatherObserved")))

PLACES = [(p["id"], p["type"], p["place"], p.get("attrs", {})) for p in TOWN.places()]  # (id, type, parent, attrs)


async def make_city(tmp_path: Path, rules: str = RULES, **extra: object) -> CityBrain:
    """Start the city (the caller stops it) with `rules` and component options `extra`."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    settings = Settings(store=str(tmp_path / "c.db"), bus="memory")
    settings.extra.update({"rules_file": str(path), "detectors": False, **extra})
    rt = CityBrain(settings, clock=FakeClock("2016-07-20T00:00:00Z"))
    await rt.start()
    await build(rt, TOWN)
    await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:Building:hospital", "type": "Building",
                                                 "place": "urn:ngsi-ld:Grid:dense", "attrs": {"critical": True}}})
    await rt.bus.drain()  # type: ignore[attr-defined]
    return rt


async def ingest(rt: CityBrain, items: list[dict]) -> None:
    report = await rt.ports.ingest.submit(items)
    assert report.stored == len(items), report


def obs(kind: str, cell: str, attr: str, value: float, when: str = "2016-07-20T00:00:00Z") -> dict:
    return {"entity": f"urn:ngsi-ld:{kind}:{cell}", "attr": attr, "value": value, "observedAt": when}


async def test_level_changes_within_a_second_and_names_factors(tmp_path: Path) -> None:
    rt = await make_city(tmp_path)
    try:
        changed: list[dict] = []
        got = asyncio.Event()

        async def on_change(msg: Message) -> None:
            changed.append(orjson.loads(msg.data)["data"])
            got.set()

        await rt.bus.subscribe("cb.event.risk.changed", on_change)
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 40)])
        await rt.bus.drain()  # type: ignore[attr-defined]
        assert changed == [] and rt.ports.risk.risk == {}
        started = time.perf_counter()
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 300, "2016-07-20T01:00:00Z")])
        await asyncio.wait_for(got.wait(), 1.0)
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0
        await rt.bus.drain()  # type: ignore[attr-defined]
        cell = rt.ports.risk.risk["urn:ngsi-ld:Grid:dense"]
        assert cell["level"] in ("orange", "red")
        names = [f["factor"] for f in cell["factors"]]
        assert names == ["hazard", "exposure", "vulnerability"]
        assert "pm25-test" in cell["factors"][0]["source"] and cell["factors"][1]["population"] == 20000
        assert cell["factors"][1]["critical_buildings"] == 1
        assert "elderly_share" in cell["factors"][2]["parts"]
        assert "hazard" in cell["explanation"] and "exposure" in cell["explanation"]
        community = rt.ports.risk.risk["urn:ngsi-ld:Community:c1"]
        assert community["worst_cell"] == "urn:ngsi-ld:Grid:dense" and community["level"] == cell["level"]
        assert {c["place"] for c in changed} == {"urn:ngsi-ld:Grid:dense", "urn:ngsi-ld:Community:c1"}
        print(f"observation -> risk.changed in {elapsed * 1000:.1f} ms: {cell['explanation']}")
        # the same hazard in a sparse, young cell is judged lower
        await ingest(rt, [obs("AirQualityObserved", "sparse", "pm25", 300, "2016-07-20T01:00:00Z")])
        await rt.bus.drain()  # type: ignore[attr-defined]
        sparse = rt.ports.risk.risk["urn:ngsi-ld:Grid:sparse"]
        assert sparse["score"] < cell["score"]
        # back to clean air: the level goes back to none
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 20, "2016-07-20T02:00:00Z")])
        await rt.bus.drain()  # type: ignore[attr-defined]
        assert rt.ports.risk.risk["urn:ngsi-ld:Grid:dense"]["level"] == "none"
        assert changed[-1]["previous"] in ("orange", "red")
    finally:
        await rt.stop()


async def test_community_rule_covers_every_cell_and_flood_weighs_low_lying(tmp_path: Path) -> None:
    rt = await make_city(tmp_path)
    try:
        await ingest(rt, [obs("WeatherObserved", "mid", "precipitation", 55)])
        await rt.bus.drain()  # type: ignore[attr-defined]
        risk = rt.ports.risk.risk
        assert {"urn:ngsi-ld:Grid:dense", "urn:ngsi-ld:Grid:sparse", "urn:ngsi-ld:Grid:mid"} <= set(risk)
        dense = risk["urn:ngsi-ld:Grid:dense"]
        assert dense["factors"][2]["parts"].get("low_lying") is True
        assert dense["score"] > risk["urn:ngsi-ld:Grid:sparse"]["score"]
    finally:
        await rt.stop()


def test_factor_arithmetic() -> None:
    median = Profile(population=10000, exposure=1.0, elderly=0.2, children=0.1)
    v, parts = vulnerability(median, "air.pollution")
    assert 1.15 < v < 1.25 and parts == {"elderly_share": 0.2, "children_share": 0.1}
    assert level_of_score(1.0 * median.exposure * v) == "red"
    assert level_of_score(0.75 * median.exposure * v) == "orange"
    assert level_of_score(0.25 * 0.7 * 1.0) == "none"
    flood, fparts = vulnerability(Profile(low_lying=True, old_buildings=0.5), "flood.waterlogging")
    assert abs(flood - 1.4) < 1e-9 and fparts["low_lying"] is True
