"""Every indicator on the hand-built fixture (see fixture.py), with the expected values worked out by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fixture import D2, DAY, M3, build, runtime

from citybrain.api import app as app_module
from citybrain.api import create_app
from citybrain.cases.catalog import load_catalog
from citybrain.indicators import load_indicators
from citybrain.indicators.spec import IndicatorError
from citybrain.runtime import CityBrain
from citybrain.trust.catalog import load_seed

CAT = load_catalog()
N_CATEGORIES = len(CAT.categories)
ROUTED = sum(1 for code in CAT.categories if CAT.router.route(code, None, None))
ONLINE = sum(1 for c in CAT.categories.values() if c.open311)
DEPTS = len(CAT.router.departments)

# the city on DAY, by hand (see fixture.py)
CITY_DAY: dict[str, float | None] = {
    "sensing_coverage": 25.0,  # g1 of g1..g4
    "departments_connected": 100 * 3 / DEPTS,  # urban, drainage, emergency accepted tasks on DAY
    "catalog_datasets": float(len(load_seed())),
    "scenarios_covered": None,  # the rules component does not run in the fixture
    "online_services": 100 * ONLINE / N_CATEGORIES,
    "early_warning_population": 30.0,  # m1 (g1 1000 + g2 2000) of 10000
    "plans_defined": None, "plans_drilled": None,  # plans/drill components absent
    "routing_coverage": 100 * ROUTED / N_CATEGORIES,
    "grants_processed": 50.0,  # 1 approval / 2 requests
    "data_freshness": 100 / 3,  # a1 (last value 23:00) of a1, a2, w1
    "uptime": 100 / 3,  # a1 24/24 h, a2 0, w1 0
    "ingest_volume": 24.0,
    "alert_precision": 200 / 3,  # A1 (its case K2 accepted), A2 (acknowledged by a person); not A3
    "dispatch_time": 0.25,  # K1 0.5 h, K2 0 h
    "on_time_closure": 200 / 3,  # K1, K4 on time; K2 late
    "time_to_close": 40 / 3,  # K1 5 h, K2 11 h, K4 24 h
    "repeat_cases": 25.0,  # K3 of K1, K2, K3, K5
    "citizen_satisfaction": 4.0,  # K1 (open311) rated 4; K4 (grid) not counted
    "emergency_response": 30.0,  # K2 (E0505): opened 02:00, accepted 02:30
    "inquiry_response": 1 / 24,  # K1: opened 01:00, accepted 02:00
}
# district d2 (g3, g4) on DAY
D2_DAY: dict[str, float | None] = {
    "sensing_coverage": 0.0, "early_warning_population": 0.0, "data_freshness": 0.0, "uptime": 0.0,
    "ingest_volume": 0.0, "alert_precision": 50.0, "on_time_closure": 100.0, "time_to_close": 24.0,
    "repeat_cases": 100.0, "dispatch_time": None, "citizen_satisfaction": None, "emergency_response": None,
    "departments_connected": 100 / DEPTS,
}


@pytest_asyncio.fixture
async def rt(tmp_path: Path) -> AsyncIterator[CityBrain]:
    node = runtime(tmp_path)
    await node.start()
    await build(node)
    yield node
    await node.stop()


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in result["indicators"]}


def check(rows: dict[str, dict[str, Any]], expected: dict[str, float | None]) -> None:
    for key, want in expected.items():
        row = rows[key]
        if want is None:
            assert row["value"] is None and row["no_data"], (key, row)
        else:
            assert row["no_data"] is None, (key, row["no_data"])
            assert row["value"] == pytest.approx(want, abs=1e-3), (key, row["value"], want)


async def test_every_indicator_on_the_city(rt: CityBrain) -> None:
    result = await rt.ports.indicators.evaluate(DAY, DAY, trend=1)
    rows = by_id(result)
    assert set(rows) == set(CITY_DAY)
    check(rows, CITY_DAY)
    # scores: direction-aware and clipped
    assert rows["sensing_coverage"]["score"] == pytest.approx(25 / 90, abs=1e-4)
    assert rows["dispatch_time"]["score"] == 1.0 and rows["time_to_close"]["score"] == 1.0
    assert rows["repeat_cases"]["score"] == pytest.approx(5 / 25)
    live = [r for r in rows.values() if r["score"] is not None]
    total = 100 * sum(r["score"] * r["weight"] for r in live) / sum(r["weight"] for r in live)
    assert result["score"] == pytest.approx(total, abs=0.01)
    # the previous day, and what moved
    assert rows["ingest_volume"]["previous"] == 12.0 and rows["ingest_volume"]["change"] == 12.0
    assert rows["sensing_coverage"]["previous"] == 25.0 and rows["early_warning_population"]["previous"] == 70.0
    assert rows["dispatch_time"]["previous"] == 1.0  # K4: opened 10:00, dispatched 11:00 the day before
    assert len(result["periods"]) == 2
    assert [a["area"] for a in result["areas"]] == ["urn:ngsi-ld:District:d1", D2]


async def test_a_district(rt: CityBrain) -> None:
    check(by_id(await rt.ports.indicators.evaluate(DAY, DAY, D2, trend=0)), D2_DAY)


async def test_empty_period_and_area_without_data(rt: CityBrain) -> None:
    empty = by_id(await rt.ports.indicators.evaluate("2030-01-01", "2030-01-07", trend=0))
    for key in ("repeat_cases", "on_time_closure", "time_to_close", "alert_precision", "citizen_satisfaction",
                "emergency_response", "grants_processed", "dispatch_time"):
        assert empty[key]["value"] is None and empty[key]["no_data"].startswith("no data"), key
    assert empty["sensing_coverage"]["value"] == 0.0 and empty["ingest_volume"]["value"] == 0.0
    nothing = await rt.ports.indicators.evaluate(DAY, DAY, M3, trend=0)  # a community without cells
    rows = by_id(nothing)
    for key in ("sensing_coverage", "early_warning_population", "uptime", "data_freshness", "repeat_cases"):
        assert rows[key]["value"] is None and "no data" in rows[key]["no_data"], key
    assert nothing["score"] is not None and nothing["coverage"] < 1


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_errors_name_line_and_field(tmp_path: Path) -> None:
    shipped = (Path(__file__).parents[2] / "citybrain" / "indicators" / "indicators.yaml").read_text("utf-8")
    bad = shipped.replace('formula: 100 * uptime()', 'formula: __import__("os").system("true")')
    line = 1 + bad.splitlines().index('    formula: __import__("os").system("true")')
    with pytest.raises(IndicatorError) as err:
        load_indicators(write(tmp_path, "a.yaml", bad))
    assert f"a.yaml:{line}:" in err.value.detail and "formula" in err.value.detail
    bad = shipped.replace("direction: lower\n    target: 1\n", "direction: sideways\n    target: 1\n", 1)
    with pytest.raises(IndicatorError, match=r"b.yaml:\d+: indicators\[\d+\].direction: expected higher or lower"):
        load_indicators(write(tmp_path, "b.yaml", bad))
    for formula, message in (("cases(colour='red')", "no argument 'colour'"), ("nope()", "unknown data function"),
                             ("cases() ** 2", "not allowed"), ("cases(channel=x)", "must be a constant")):
        text = shipped.replace("formula: datasets()", f'formula: "{formula}"')
        with pytest.raises(IndicatorError, match=message):
            load_indicators(write(tmp_path, "c.yaml", text))
    with pytest.raises(IndicatorError, match=r"w.yaml:2: uptimes: unknown indicator"):
        load_indicators(weights=write(tmp_path, "w.yaml", "uptime: 1\nuptimes: 2\n"))


async def test_weight_override_and_api(tmp_path: Path) -> None:
    weights = write(tmp_path, "w.yaml", "weights:\n  sensing_coverage: 0\n  uptime: 50\n")
    node = runtime(tmp_path, {"indicators": {"weights": str(weights)}})
    await node.start()
    try:
        await build(node)
        rows = by_id(await node.ports.indicators.evaluate(DAY, DAY, trend=0))
        assert rows["sensing_coverage"]["weight"] == 0 and rows["uptime"]["weight"] == 50
        saved = app_module.EXTENSIONS[:]
        app_module.EXTENSIONS[:] = ["citybrain.indicators.api"]
        try:
            app = create_app(node, manage_runtime=False)
        finally:
            app_module.EXTENSIONS[:] = saved
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            got = (await client.get("/api/v1/indicators", params={"from": DAY, "to": DAY, "area": D2})).json()
            assert by_id(got)["time_to_close"]["value"] == 24.0
            one = (await client.get("/api/v1/indicators/repeat_cases", params={"from": DAY, "to": DAY})).json()
            assert one["value"] == 25.0 and {a["area"]: a["value"] for a in one["areas"]}[D2] == 100.0
            assert (await client.get("/api/v1/indicators/nope")).status_code == 404
            assert (await client.get("/api/v1/indicators", params={"area": "urn:x"})).status_code == 404
        kpis = await node.ports.indicators.kpis()
        assert isinstance(kpis["score"], float) and 0 <= kpis["score"] <= 100
    finally:
        await node.stop()
