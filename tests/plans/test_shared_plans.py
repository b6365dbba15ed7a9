"""Plans on a node of two processes (one PostgreSQL schema, one bus): runs and rule overrides are node-wide.

A run proposed on one process is confirmed on the other; the plan's rule and detector overrides are in force
on both and on a process started later (they are stored, not held in memory); two processes proposing or
sweeping at once open one run and close it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from cases.node import Node, nats_ready, pg_url, until

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.demo import load_demo_city
from citybrain.demo.series import local_iso
from citybrain.drill import components
from citybrain.errors import CityBrainError
from citybrain.plans import PlanDesk
from citybrain.runtime import CityBrain

CMD = "command_centre:wang"


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def url() -> Iterator[str]:
    """A fresh PostgreSQL schema for the node's processes."""
    yield from pg_url()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """One in-process bus shared by the runtimes, or a NATS server (fresh stream and prefix)."""
    if request.param == "nats":
        nats_ready()
    return str(request.param)


@asynccontextmanager
async def two_processes(url: str, kind: str) -> AsyncIterator[tuple[Node, CityBrain, CityBrain]]:
    """Start process A (it writes the tiny demo city), then process B."""
    def settings() -> Settings:
        return Settings(extra={"plans": ["rainstorm"], "cases": {"checker": False}, "plans_sweep": 1e9})

    async with Node(url, settings, components(), kind, FakeClock(local_iso("2016-07-20 07:00"))) as node:
        a = await node.start()
        await load_demo_city(a, "tiny")
        b = await node.start()
        yield node, a, b


def desk(rt: CityBrain) -> PlanDesk:
    found: PlanDesk = rt.ports.plans
    return found


def blue_bound(rt: CityBrain) -> float:
    rule = next(r for r in rt.ports.rules.engine.rules if r.id == "short-heavy-rain")
    return float(rule.levels["blue"].of.above)


def threshold(rt: CityBrain) -> float:
    return float(rt.ports.rules.detectors.threshold)


@pytest.mark.timeout(120)
async def test_a_plan_confirmed_on_another_process_overrides_rules_everywhere_and_after_restart(
        url: str, bus_kind: str) -> None:
    async with two_processes(url, bus_kind) as (node, a, b):
        assert blue_bound(a) == blue_bound(b) == 20.0
        run = await a.execute("plan.propose", {"plan": "rainstorm", "level": "IV", "trigger": "manual"},
                              a.context(CMD))
        confirmed = await b.execute("plan.confirm", {"run": run["id"], "reason": "on duty"}, b.context(CMD))
        assert confirmed["state"] == "active"
        await node.settle()

        async def in_force() -> bool:
            return all(blue_bound(rt) == 10.0 and threshold(rt) == 0.98 for rt in (a, b))

        await until(in_force, what="the plan's overrides on both processes")
        assert all(desk(rt).run_of("rainstorm") is not None and desk(rt).run_of("rainstorm")["state"] == "active"
                   for rt in (a, b))
        await node.stop(b)
        await node.stop(a)
        c = await node.start()  # the whole node restarted
        assert blue_bound(c) == 10.0 and threshold(c) == 0.98
        assert desk(c).run_of("rainstorm")["id"] == run["id"]
        d = await node.start()
        await c.execute("plan.end", {"run": run["id"], "reason": "rain over"}, c.context(CMD))
        await node.settle()

        async def restored() -> bool:
            return all(blue_bound(rt) == 20.0 and threshold(rt) == 0.99 for rt in (c, d))

        await until(restored, what="the overrides ended on both processes")
        e = await node.start()
        assert blue_bound(e) == 20.0 and threshold(e) == 0.99
        types = [ev.type for ev in await e.store.events(limit=100_000)]
        assert types.count("plan.overrides.applied") == 1 and types.count("plan.overrides.restored") == 1


@pytest.mark.timeout(120)
async def test_two_processes_open_one_run_and_close_it_once(url: str, bus_kind: str) -> None:
    async with two_processes(url, bus_kind) as (node, a, b):
        got = await asyncio.gather(
            *(rt.execute("plan.propose", {"plan": "rainstorm", "level": "IV", "trigger": "manual"}, rt.context(CMD))
              for rt in (a, b)), return_exceptions=True)
        opened = [g for g in got if isinstance(g, dict)]
        assert len(opened) == 1 and all(isinstance(g, CityBrainError) for g in got if g not in opened)
        run_id = opened[0]["id"]
        runs = [d.data for d in await a.store.list_docs("plan_runs")]
        assert [r["id"] for r in runs] == [run_id]
        # the other process's view follows; a higher level is proposed there, on the same run
        await node.settle()
        await until(lambda: _knows(b, run_id), what="B knowing the run")
        higher = await b.execute("plan.propose", {"plan": "rainstorm", "level": "III", "trigger": "manual"},
                                 b.context(CMD))
        assert higher["id"] == run_id and higher["pending_level"] == "III"
        await a.execute("plan.confirm", {"run": run_id}, a.context(CMD))
        await b.execute("plan.end", {"run": run_id, "reason": "rain over"}, b.context(CMD))
        await node.settle()
        node.clock.advance(7 * 3600)  # past the plan's 6 h recovery
        await asyncio.gather(desk(a).sweep(), desk(b).sweep())  # both sweep at once, on the stored runs
        closes = await a.store.events(type_prefix="command.plan.close")
        assert len(closes) == 1
        doc = await a.store.get_doc("plan_runs", run_id)
        assert doc is not None and doc.data["state"] == "closed"
        await node.settle()
        assert desk(a).run_of("rainstorm") is None and desk(b).run_of("rainstorm") is None
        listed = {r["id"]: r["state"] for r in [d.data for d in await b.store.list_docs("plan_runs")]}
        assert listed == {run_id: "closed"}


async def _knows(rt: CityBrain, run_id: str) -> bool:
    run = desk(rt).run_of("rainstorm")
    return run is not None and run["id"] == run_id
