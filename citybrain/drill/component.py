"""Drills: run a plan against the demo city in a sandbox, replaying its recorded scenario on a fake clock.

    report = await run_drill("rainstorm", out_dir="var/drills")

The sandbox is a fresh runtime on a temporary SQLite file with the in-process bus: nothing touches the
live node. Recorded hours are submitted through ingest in time order while a FakeClock follows them;
between hours the clock moves in 10-minute steps and simulated handlers acknowledge and complete their
tasks (seeded, so the same drill gives the same report) and communities report at the plan's cadence.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citybrain.clock import FakeClock, parse_time
from citybrain.config import Settings
from citybrain.demo import Replay, load_demo_city
from citybrain.demo.series import to_utc, window
from citybrain.drill.handlers import Handlers
from citybrain.drill.report import build_report, write_report
from citybrain.plans.loader import load_plan

STEP = 600.0  # seconds of simulated time between handler rounds
COMPONENTS: list[str] = [
    "citybrain.model.commands", "citybrain.ingest.observations", "citybrain.situation", "citybrain.rules",
    "citybrain.risk", "citybrain.alerts", "citybrain.cases", "citybrain.modes", "citybrain.dispatch",
    "citybrain.plans",
]
REQUIRED = {"citybrain.model.commands", "citybrain.ingest.observations", "citybrain.situation", "citybrain.modes",
            "citybrain.dispatch", "citybrain.plans"}


@dataclass
class DrillResult:
    """The report of a drill and the files it was written to."""

    report: dict[str, Any]
    files: list[Path]


def components() -> list[str]:
    """Return the drill's components that are installed (the optional ones may be absent)."""
    out = []
    for name in COMPONENTS:
        try:
            importlib.import_module(name)
        except ImportError:
            if name in REQUIRED:
                raise
            continue
        out.append(name)
    return out


async def settle(rt: Any, rounds: int = 50) -> None:
    """Wait until the in-process bus has delivered everything published so far (and what that caused)."""
    subs = getattr(rt.bus, "_subs", None)
    for _ in range(rounds):
        await asyncio.sleep(0)
        if subs is None:
            await asyncio.sleep(0.01)
            return
        busy = [s for s in list(subs) if not s.queue.empty() or getattr(s, "current", None) is not None]
        if not busy:
            await asyncio.sleep(0)
            if all(s.queue.empty() for s in list(subs)):
                return
        for s in busy:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(s.queue.join(), timeout=5)


def plan_source(plan_name: str) -> str:
    """Return what the sandbox should load: the file's absolute path, or the shipped plan's name."""
    path = Path(plan_name)
    return str(path.resolve()) if path.is_file() else plan_name


def scenario_of(plan_scenario: dict[str, str]) -> tuple[str, str]:
    """Return the [start, end) of a plan's scenario in UTC ISO (start/end are Beijing local times)."""
    lo, hi = window(plan_scenario.get("window", "rainstorm"))
    start = plan_scenario.get("start")
    end = plan_scenario.get("end")
    from citybrain.clock import iso

    return (iso(to_utc(start)) if start else lo), (iso(to_utc(end)) if end else hi)


async def run_drill(plan_name: str, out_dir: str | Path | None = None, size: str = "tiny",
                    auto_confirm: bool = True, formats: tuple[str, ...] = ("md", "html", "json"),
                    seed: int = 20160720, tail_hours: float = 48.0) -> DrillResult:
    """Run one plan's drill in a sandbox and write its report; return the report and the files."""
    began = time.perf_counter()
    plan = load_plan(plan_name)
    start, end = scenario_of(plan.scenario)
    source = plan_source(plan_name)
    with tempfile.TemporaryDirectory(prefix="citybrain-drill-") as tmp:
        settings = Settings(store=str(Path(tmp) / "drill.db"), bus="memory", node_id="drill", role="city",
                            extra={"plans": [source], "plans_auto_confirm": auto_confirm, "plans_sweep": STEP,
                                   "cases": {"checker": False}})
        clock = FakeClock(start)
        from citybrain.runtime import CityBrain

        async with CityBrain(settings, clock=clock, components=components()) as rt:
            await load_demo_city(rt, size)
            await settle(rt)
            replay = Replay(rt, speed=0, start=start, end=end, loop=False)
            handlers = Handlers(rt, seed)
            for when, _ in list(replay.hours):
                target = parse_time(when)
                if target > clock.now():
                    clock.set(target)
                await replay.step()
                await settle(rt)
                for _ in range(int(3600 / STEP)):
                    clock.advance(STEP)
                    await settle(rt)
                    await handlers.act()
                    await settle(rt)
            tail = 0.0
            desk = rt.ports.plans
            board = rt.ports.modes
            city = board.city()
            while tail < tail_hours * 3600 and (desk.run_of(plan.id) is not None or (
                    city is not None and board.mode_of(city)["mode"] == "recovery")):
                clock.advance(STEP)
                tail += STEP
                await settle(rt)
                await handlers.act()
                await settle(rt)
            report = await build_report(rt, plan, start, end, replay.summary(), size,
                                        time.perf_counter() - began)
    files = write_report(report, Path(out_dir) if out_dir else Path("var") / "drills", formats)
    return DrillResult(report, files)
