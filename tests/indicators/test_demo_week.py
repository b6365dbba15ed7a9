"""The demo city replayed for a simulated week through the whole pipeline: the report's numbers agree with the
case and alert records, recomputed here directly from the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.indicators.cli import build_report
from citybrain.model.types import OBSERVATION_TYPES
from citybrain.runtime import COMPONENTS, CityBrain

demo = pytest.importorskip("citybrain.demo.city", reason="the demo city is not in this checkout")
replay = pytest.importorskip("citybrain.demo.replay", reason="the demo replay is not in this checkout")

START, END = "2016-07-14T00:00:00.000Z", "2016-07-21T00:00:00.000Z"  # a week ending with the 20 July rainstorm


async def test_demo_week_report_agrees_with_the_store(tmp_path: Path) -> None:
    components = [c for c in COMPONENTS if c != "citybrain.mqtt"]
    components += [] if "citybrain.indicators" in components else ["citybrain.indicators"]
    settings = Settings(store=str(tmp_path / "week.db"), bus="memory", extra={"cases": {"checker": False}})
    rt = CityBrain(settings, clock=FakeClock(START), components=components)
    await rt.start()
    try:
        await demo.load_demo_city(rt)
        await rt.bus.drain()
        began = time.perf_counter()
        run = replay.Replay(rt, speed=0, start=START, end=END, loop=False)
        while (when := run.next_time()) is not None:
            if when > rt.now():
                rt.clock.set(when)  # type: ignore[attr-defined]
            await run.step()
            await rt.bus.drain()
        await rt.ports.alerts.outbox.flush()
        await rt.bus.drain()
        print(f"\nreplayed {run.submitted} observations in {time.perf_counter() - began:.1f} s")
        result, html = await build_report(rt, "2016-07-14", "2016-07-20", None, trend=1)
        rows = {r["id"]: r for r in result["indicators"]}
        # recompute a sample directly from the store
        cases = [d.data for d in await rt.store.list_docs("cases", limit=100_000) if d.data.get("kind") == "case"]
        alerts = [d.data for d in await rt.store.list_docs("alerts", limit=100_000)]
        week = [a for a in alerts if START <= a["dateIssued"] < END]
        opened = [c for c in cases if START <= c["created_at"] < END]
        assert week and opened, "the rainstorm raises alerts that open cases"
        assert rows["alert_precision"]["inputs"]["alerts()"] == len(week)
        assert rows["repeat_cases"]["inputs"]["cases()"] == len(opened)
        repeats = [c for c in opened if c["state"] == "merged" or c.get("merged_into") or c.get("duplicates")]
        assert rows["repeat_cases"]["value"] == pytest.approx(100 * len(repeats) / len(opened), abs=1e-3)
        dispatched = [c for c in opened if c["tasks"]]
        hours = [(min(t["dispatched_at"] for t in c["tasks"]) >= c["created_at"]) for c in dispatched]
        assert all(hours) and rows["dispatch_time"]["inputs"]["case_hours(until='dispatch')"] is not None
        types = rt.ports.directory.types
        stored = 0
        for e in [e for e, kind in types.items() if kind in OBSERVATION_TYPES]:
            rows_of = await rt.store.history(e, since="2016-07-14T00:00:00.000Z", until="2016-07-21T00:00:00.000Z",
                                             limit=10_000_000)
            stored += sum(1 for h in rows_of if isinstance(h.value, int | float) and not isinstance(h.value, bool))
        assert rows["ingest_volume"]["value"] == pytest.approx(stored / 7, abs=1e-3)
        assert f"{result['score']:.2f}".rstrip("0").rstrip(".") in html
        assert result["score"] is not None and rows["sensing_coverage"]["value"] > 0
    finally:
        await rt.stop()
