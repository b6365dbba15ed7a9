"""Replaying the Beijing extract: the 20 July 2016 rainstorm and the December 2016 smog raise alerts in the
right places and hours; quiet days stay quiet. Prints the alert counts per day (Beijing local date)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from citybrain.clock import FakeClock, epoch
from citybrain.config import Settings
from citybrain.runtime import CityBrain

demo = pytest.importorskip("citybrain.demo.city", reason="the demo city (citybrain/demo) is not in this checkout")
replay = pytest.importorskip("citybrain.demo.replay", reason="the demo replay is not in this checkout")
series = pytest.importorskip("citybrain.demo.series", reason="the demo series are not in this checkout")

pytestmark = pytest.mark.slow


def local_day(utc_iso: str) -> str:
    """Return the Beijing local date of a UTC timestamp."""
    return str((series.to_utc(utc_iso) + timedelta(hours=8)).date())


async def run(tmp_path: Path, start: str, end: str) -> tuple[CityBrain, list[dict]]:
    settings = Settings(store=str(tmp_path / "demo.db"), bus="memory")
    rt = CityBrain(settings, clock=FakeClock(series.iso(series.to_utc(start))))
    await rt.start()
    await demo.load_demo_city(rt)
    await rt.bus.drain()
    began = time.perf_counter()
    stored = 0
    for when, items in replay.hour_batches(start, end):
        if when > rt.now():
            rt.clock.set(when)  # type: ignore[attr-defined]
        stored += (await rt.ports.ingest.submit(items, source="test-replay")).stored
        await rt.bus.drain()
    took = time.perf_counter() - began
    print(f"\nreplayed {stored} observations {start} .. {end} in {took:.1f} s ({stored / took:.0f} obs/s end to end)")
    await rt.ports.alerts.outbox.flush()
    alerts = [d.data for d in await rt.store.list_docs("alerts", limit=100_000)]
    return rt, alerts


def per_day(alerts: list[dict], first: str, days: int) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for a in alerts:
        out[local_day(a["validFrom"])][a["category"]] += 1
    day0 = series.to_utc(first) + timedelta(hours=8)
    print("day         alerts raised that day (category: count)")
    for i in range(days):
        day = str((day0 + timedelta(days=i)).date())
        print(f"{day}  {dict(sorted(out.get(day, Counter()).items())) or '-'}")
    return out


async def test_rainstorm_20_july_2016(tmp_path: Path) -> None:
    rt, alerts = await run(tmp_path, "2016-07-14", "2016-07-23")
    try:
        days = per_day(alerts, "2016-07-14", 9)
        flood = [a for a in alerts if a["category"].startswith("flood.")]
        assert flood and all(local_day(a["validFrom"]) == "2016-07-20" for a in flood), [a["validFrom"] for a in flood]
        for quiet in ("2016-07-14", "2016-07-15", "2016-07-16", "2016-07-17", "2016-07-18"):
            assert not any(c.startswith("flood.") for c in days.get(quiet, {})), quiet
        hours = sorted((epoch(a["validFrom"]) // 3600 + 8) % 24 for a in flood)
        assert all(6 <= h <= 20 for h in hours), hours  # during the storm's daytime peak, Beijing time
        # right places: the stations with an alert are exactly those whose gauges passed 50 mm in 12 h
        storm = [a for a in flood if a["category"] == "flood.rainstorm"]
        alerted = {m["entity"].rsplit(":", 1)[-1] for a in storm for m in a["members"]}
        sums: dict[str, list[float]] = defaultdict(list)
        for rec in series.read_air("2016-07-19", "2016-07-22"):
            sums[rec.station].append(rec.weather.get("precipitation", 0.0))
        wet = {st for st, vals in sums.items() if max(sum(vals[i:i + 12]) for i in range(len(vals))) >= 50}
        assert alerted == wet, (alerted, wet)
        assert max(a["warningLevel"] for a in storm) in ("orange", "yellow", "red")
        risk = rt.ports.risk
        assert risk.changes > 0
    finally:
        await rt.stop()


async def test_december_2016_smog(tmp_path: Path) -> None:
    rt, alerts = await run(tmp_path, "2016-12-13", "2016-12-23")
    try:
        days = per_day(alerts, "2016-12-13", 10)
        air = [a for a in alerts if a["category"] == "air.pollution"]
        # 13 Dec is the tail of the 10-12 Dec episode (the 24 h means start high); 14-15 Dec were clean
        for quiet in ("2016-12-14", "2016-12-15", "2016-12-22"):
            assert "air.pollution" not in days.get(quiet, {}), quiet
        red = [a for a in air if a["warningLevel"] == "red"]
        episode = [a for a in air if local_day(a["validFrom"]) > "2016-12-13"]
        assert red and all("2016-12-16" <= local_day(a["validFrom"]) <= "2016-12-21" for a in episode)
        assert len({a["community"] for a in red}) >= 3  # many places, grouped per community
        assert all(m["evidence"] for a in air for m in a["members"])
    finally:
        await rt.stop()
