"""The built-in demo city: layout, loading, replay of the recorded series, and kill -9 durability."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.demo import series
from citybrain.demo.city import load_demo_city
from citybrain.demo.layout import SIZES, build_layout
from citybrain.demo.replay import Replay, hour_batches, run_demo
from citybrain.runtime import CityBrain
from citybrain.store import EntityQuery

ROOT = Path(__file__).resolve().parents[2]
SHARED_AIR = Path("/work/shared/data/beijing-air")
# Beijing local 2016-07-19 20:00 … 2016-07-20 13:00, around the rainstorm peak
RANGE = ("2016-07-19T12:00:00Z", "2016-07-20T06:00:00Z")


# the demo only needs the model and ingest; other components are left out to keep these tests fast and focused
CORE = ["citybrain.model.commands", "citybrain.ingest.observations"]


def runtime(tmp_path: Path, clock: FakeClock | None = None, components: list[str] | None = CORE) -> CityBrain:
    return CityBrain(Settings(store=str(tmp_path / "city.db"), bus="memory"), clock=clock, components=components)


def original_row(station: str, when: tuple[str, str, str, str]) -> dict[str, str] | None:
    """Return one station-hour of the original UCI file (year, month, day, hour), or None without it."""
    path = SHARED_AIR / f"PRSA_Data_{station}_20130301-20170228.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        return next(r for r in csv.DictReader(fh) if (r["year"], r["month"], r["day"], r["hour"]) == when)


def test_layout_is_deterministic_and_holds_every_station() -> None:
    for size in [s for s in SIZES if s != "large"]:  # large takes a second; same code path
        layout = build_layout(size)
        for s in series.stations():
            cell = layout.cell_at(float(s["longitude"]), float(s["latitude"]))
            assert cell is not None and cell.id == layout.station_cell[s["station"]]
            assert cell.id.startswith(f"urn:ngsi-ld:Grid:{s['district'].lower()}-")
    assert build_layout("tiny").areas == build_layout("tiny").areas


def test_series_reads_time_ranges() -> None:
    start, end = series.window("rainstorm")
    assert start == "2016-07-05T16:00:00.000Z"
    assert len(series.read_air(start, end)) == 28 * 24 * 12
    peak = series.read_air("2016-07-20 12:00", "2016-07-20 13:00", stations=["Dongsi"])  # naive = Beijing time
    assert [(r.observed_at, r.weather["precipitation"]) for r in peak] == [("2016-07-20T04:00:00.000Z", 20.3)]
    smog = series.read_air(*series.window("smog"))
    assert max(r.air.get("pm25", 0) for r in smog) > 500
    traffic = series.read_traffic("2016-07-20T00:00:00Z", "2016-07-21T00:00:00Z")
    assert len(traffic) == 24 and traffic[0].source_time.startswith("2017-07-19")  # same weekday, 52 weeks on


async def test_load_builds_hierarchy_and_is_idempotent(tmp_path: Path) -> None:
    async with runtime(tmp_path, FakeClock()) as rt:
        city = await load_demo_city(rt)
        assert city.created == sum(city.counts.values()) and city.counts["Grid"] == 288
        places = rt.ports.places
        assert len(places.children[city.city_id]) == 8
        for district in places.children[city.city_id]:
            assert len(places.children[district]) == 3
        cells = places.cells_of(city.city_id)
        assert len(cells) == 288 and len(places.ancestors(cells[0])) == 4
        for s in series.stations():
            lon, lat = float(s["longitude"]), float(s["latitude"])
            cell = places.locate(lon, lat)
            assert cell is not None and places.within(cell, f"urn:ngsi-ld:District:{s['district'].lower()}")
            for sensor in (city.air_sensors[s["station"]], city.weather_sensors[s["station"]]):
                entity = await rt.store.get_entity(sensor)
                assert entity is not None and entity.place == cell and entity.value("nameZh")
        grid = await rt.store.get_entity(cells[0])
        assert grid is not None and grid.value("population") > grid.value("elderly") > 0
        org = await rt.store.get_entity("urn:ngsi-ld:Organization:water")
        assert org is not None and org.value("nameZh") == "水务局"
        total = await rt.store.count_entities(EntityQuery())
        again = await load_demo_city(rt)
        assert again.already_loaded and await rt.store.count_entities(EntityQuery()) == total
    async with runtime(tmp_path, FakeClock()) as rt:  # and after a restart
        assert (await load_demo_city(rt)).created == 0


async def test_replay_stores_recorded_values_and_skips_missing(tmp_path: Path) -> None:
    async with runtime(tmp_path, FakeClock()) as rt:
        await load_demo_city(rt, "tiny")
        replay = Replay(rt, speed=0, start=RANGE[0], end=RANGE[1], loop=False)
        await replay.run()
        summary = replay.summary()
        assert summary["batches"] == 18 and summary["rejected"] == 0 and replay.done
        assert set(summary["by_type"]) == {"AirQualityObserved", "WeatherObserved", "TrafficFlowObserved"}
        assert summary["simulated_from"] == "2016-07-19T12:00:00.000Z"
        assert summary["simulated_to"] == "2016-07-20T05:00:00.000Z"
        peak = "2016-07-20T04:00:00.000Z"  # 12:00 Beijing time
        rain = await rt.store.history("urn:ngsi-ld:WeatherObserved:Dongsi", "precipitation", since=peak)
        original = original_row("Dongsi", ("2016", "7", "20", "12"))  # the UCI file, when present
        expected = float(original["RAIN"]) if original else 20.3
        assert rain[0].observed_at == peak and rain[0].value == expected and rain[0].unit == "MMT"
        air = await rt.store.get_entity("urn:ngsi-ld:AirQualityObserved:Dongsi")
        assert air is not None and air.attrs["pm25"]["observedAt"] == summary["simulated_to"]
        # Changping 20:00 had no pollutant values: no air rows then, but its weather was stored
        at = "2016-07-19T12:00:00.000Z"
        changping = await rt.store.history("urn:ngsi-ld:AirQualityObserved:Changping", since=at, until=peak)
        assert changping and all(h.observed_at != at for h in changping)
        temp = await rt.store.history("urn:ngsi-ld:WeatherObserved:Changping", "temperature", since=at, until=peak)
        assert temp[0].observed_at == at and temp[0].value == 23.1
        # Shunyi 01:00: SO2 missing, NO2 present
        at = "2016-07-19T17:00:00.000Z"
        shunyi = {h.attr: h.value for h in await rt.store.history(
            "urn:ngsi-ld:AirQualityObserved:Shunyi", since=at, until="2016-07-19T17:00:01Z")}
        assert "so2" not in shunyi and shunyi["no2"] == 13.0
        traffic = await rt.store.history("urn:ngsi-ld:TrafficFlowObserved:east-3rd-ring", "intensity")
        assert len(traffic) == 18 and traffic[0].value == series.read_traffic(*RANGE)[0].intensity


async def test_replay_paced_by_clock_and_loops(tmp_path: Path) -> None:
    clock = FakeClock()
    async with runtime(tmp_path, clock) as rt:
        await load_demo_city(rt, "tiny")
        replay = Replay(rt, speed=3600, start=RANGE[0], end="2016-07-19T15:00:00Z", loop=True)
        task = asyncio.create_task(replay.run())

        async def batches(n: int) -> None:
            for _ in range(500):
                if replay.batches >= n:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert replay.batches == n

        await batches(1)  # the first hour goes at once; each further hour after 1 s of clock time
        clock.advance(0.5)
        await batches(1)
        clock.advance(0.5)
        await batches(2)
        clock.advance(2)
        await batches(4)  # the third hour, then the loop back (one hour's wait)
        assert replay.loops == 1 and replay.sim_time == RANGE[0].replace(":00Z", ":00.000Z")
        replay.stop()
        clock.advance(1)
        await asyncio.wait_for(task, 5)
        history = await rt.store.history("urn:ngsi-ld:WeatherObserved:Dongsi", "temperature")
        assert len(history) == 3  # the repeat of an hour overwrites, it does not duplicate


async def test_run_demo_summary(tmp_path: Path) -> None:
    async with runtime(tmp_path, components=None) as rt:  # with every component, as `make demo` runs
        summary = await run_demo(rt, duration=0.5, speed=math.inf, start=RANGE[0], size="tiny")
        assert summary["observations"] > 0 and summary["rejected"] == 0
        assert summary["simulated_from"] == "2016-07-19T12:00:00.000Z"
        assert summary["observations"] == sum(summary["by_type"].values())


def test_kill_9_keeps_every_acknowledged_observation(tmp_path: Path) -> None:
    db = tmp_path / "city.db"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "replay_child.py"), str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 40
    while "LOADED\n" not in lines and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "LOADED\n" in lines, proc.stderr.read() if proc.poll() is not None else "child did not load"  # type: ignore[union-attr]
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    acks = [line.split() for line in lines if line.startswith("ACK ")]
    assert len(acks) >= 5, f"only {len(acks)} batches acknowledged"
    acked = {when: int(n) for _, n, when in acks}
    conn = sqlite3.connect(db)
    marks = ",".join("?" * len(acked))
    stored = conn.execute(f"SELECT count(*) FROM history WHERE observed_at IN ({marks})", list(acked)).fetchone()[0]
    assert stored == sum(acked.values())
    last = acks[-1][2]
    hour = hour_batches(last, last.replace(".000Z", ".001Z"))
    assert hour and hour[0][0] == last
    for item in hour[0][1]:
        values = item["values"] if "values" in item else {item["attr"]: item["value"]}
        for attr, value in values.items():
            row = conn.execute("SELECT value FROM history WHERE entity_id=? AND name=? AND observed_at=?",
                               (item["entity"], attr, last)).fetchone()
            assert row is not None and float(row[0]) == value
            state = conn.execute("SELECT observed_at FROM attrs WHERE entity_id=? AND name=?",
                                 (item["entity"], attr)).fetchone()
            assert state is not None and state[0] >= last
    conn.close()


def test_shipped_extract_is_small_and_matches_its_manifest() -> None:
    manifest = json.loads((series.DATA_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"]["air.csv.gz"] == len(series.read_air())
    assert manifest["rows"]["traffic.csv.gz"] == len(series.read_traffic())
    assert sum(p.stat().st_size for p in series.DATA_DIR.iterdir()) < 3_000_000
    assert (series.DATA_DIR / "ATTRIBUTION.md").is_file()
