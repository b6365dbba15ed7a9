"""Emergency plans (应急预案): triggers propose a level, a person confirms, the city switches in one step.

A plan run goes proposed → active (confirmed: mode declared, tasks issued, overrides in force, resources
dispatched) → ended (mode recovery, overrides restored, resources released) → closed (mode normal after
the plan's recovery time); or proposed → rejected. Plans are the YAML files of plans/library (or those
named by settings.extra["plans"]). Commands: plan.propose, plan.confirm, plan.reject, plan.end,
plan.close, plan.tasks.issue, plan.task.ack, plan.task.done, plan.report.

Runs are documents ("plan_runs"); any process of the node may step any run. Every command reads the run from
the store and writes it with the version it read, and a new run takes its plan's slot ("plan_slots") the same
way, so a plan has one live run however many processes judge its triggers. Each process's view of the live
runs (for judging triggers on every observation) follows the plan command events of every process, and the
clock sweep re-reads it from the store before judging.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from citybrain.bus import Message
from citybrain.clock import epoch
from citybrain.errors import CityBrainError
from citybrain.events import decode_event
from citybrain.plans import commands as c
from citybrain.plans.effects import Overrides
from citybrain.plans.loader import PlanFileError, library, load_plan, parse_plan
from citybrain.plans.spec import Plan
from citybrain.plans.triggers import Judge, Tracker
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.obs import Located
    from citybrain.runtime import CityBrain

__all__ = ["PlanDesk", "PlanFileError", "library", "load_plan", "parse_plan", "setup"]
log = logging.getLogger("citybrain.plans")
RUNS = c.RUNS
AUTOMATION = "system:plans"
EVENTS = "cb.event.command.plan.>"


class PlanDesk:
    """The loaded plans, their live runs, and the judge that watches their triggers and end conditions."""

    def __init__(self, rt: CityBrain, plans: dict[str, Plan]) -> None:
        self.rt = rt
        self.plans = plans
        self.tracker = Tracker()
        self.judge = Judge(rt, self.tracker)
        self.overrides = Overrides(rt)
        self.runs: dict[str, dict[str, Any]] = {}  # runs not closed or rejected, as last seen in the store
        self.versions: dict[str, int] = {}  # run id -> the version `runs` holds (or last held)
        self.auto_confirm = bool(rt.settings.extra.get("plans_auto_confirm", False))
        self._lock = asyncio.Lock()
        self.ticks = 0

    async def load(self) -> None:
        """Read the live runs from the store (at start, and before every clock sweep)."""
        found: dict[str, tuple[dict[str, Any], int]] = {}
        for state in c.LIVE:
            for doc in await self.rt.store.list_docs(RUNS, where={"state": state}, limit=100_000):
                found[doc.id] = (doc.data, doc.version)
        for run_id in [r for r in self.runs if r not in found]:
            del self.runs[run_id]
        for run, version in found.values():
            self.follow(run, version)

    def follow(self, run: dict[str, Any], version: int) -> None:
        """Take a run as stored at `version` into the live view (unless a newer version is held already)."""
        if version < self.versions.get(run["id"], 0):
            return
        self.versions[run["id"]] = version
        if run["state"] in c.LIVE:
            self.runs[run["id"]] = run
        else:
            self.runs.pop(run["id"], None)

    async def fetch(self, run_id: str) -> tuple[dict[str, Any] | None, int]:
        """Return (a private copy of) a run as stored and its version; (None, 0) when there is none."""
        doc = await self.rt.store.get_doc(RUNS, run_id)
        if doc is None:
            return None, 0
        self.follow(copy.deepcopy(doc.data), doc.version)
        return doc.data, doc.version

    async def live(self, plan_id: str) -> tuple[dict[str, Any] | None, int, int]:
        """Return the plan's live run as stored (or None), its version, and the version of the plan's slot."""
        slot = await self.rt.store.get_doc(c.SLOTS, plan_id)
        if slot is not None:
            run, version = await self.fetch(str(slot.data.get("run")))
            return (run, version, slot.version) if run is not None and run["state"] in c.LIVE else (None, 0, slot.version)
        for doc in await self.rt.store.list_docs(RUNS, where={"plan": plan_id}, limit=100_000):
            if doc.data["state"] in c.LIVE:  # a run from before plan slots existed
                return doc.data, doc.version, 0
        return None, 0, 0

    async def on_event(self, msg: Message) -> None:
        """Follow a plan run step of any process: re-read the run when the event names a newer version."""
        data = decode_event(msg.data).data
        version, run_id = data.get("version"), data.get("run")
        if isinstance(version, int) and isinstance(run_id, str) and version > self.versions.get(run_id, 0):
            await self.fetch(run_id)

    def area_of(self, plan: Plan) -> str | None:
        """Return the area a plan covers: its own, else the city."""
        return plan.area or self.rt.ports.modes.city()

    def run_of(self, plan_id: str) -> dict[str, Any] | None:
        """Return the live run of a plan, if any."""
        live = [r for r in self.runs.values() if r["plan"] == plan_id]
        return max(live, key=lambda r: r["proposed_at"]) if live else None

    async def on_rows(self, located: list[Located]) -> None:
        """Feed numeric observations to the tracker, then judge every plan at the newest observation time."""
        newest = 0.0
        for item in located:
            if item.value is not None:
                self.tracker.add(item.row.entity_id, item.row.attr, item.ts, item.value, item.areas)
                newest = max(newest, item.ts)
        if newest:
            await self.tick(newest)

    async def on_alert(self, msg: Message) -> None:
        """Track alerts, then judge plans whose triggers read alerts."""
        event = decode_event(msg.data)
        self.judge.on_alert(event.type.rsplit(".", 1)[-1], event.data)
        await self.tick(max(self.tracker.latest, epoch(self.rt.now())))

    async def tick(self, now: float) -> None:
        """Propose, escalate, end and close plan runs as their conditions say."""
        async with self._lock:
            self.ticks += 1
            for plan in self.plans.values():
                area = self.area_of(plan)
                if area is None:
                    continue
                try:
                    await self._judge(plan, area, now)
                except CityBrainError as exc:  # another process stepped the run first: the store has the news
                    log.info("plan %s: %s", plan.id, exc.detail)

    async def _judge(self, plan: Plan, area: str, now: float) -> None:
        run = self.run_of(plan.id)
        if run is None or run["state"] in ("proposed", "active"):
            await self._triggers(plan, area, run, now)
        run = self.run_of(plan.id)
        if run is not None and run["state"] == "active":
            await self._end(plan, run, now)
        elif run is not None and run["state"] == "ended":
            if max(now, epoch(self.rt.now())) - epoch(run["ended_at"]) >= plan.recovery:
                await self.rt.execute("plan.close", {"run": run["id"]}, self.rt.context(AUTOMATION))

    async def _triggers(self, plan: Plan, area: str, run: dict[str, Any] | None, now: float) -> None:
        from citybrain.emergency import LEVELS

        best: tuple[str, str, list[str]] | None = None
        for t in plan.triggers:
            ok, why = self.judge.holds(t.when, area, now, plan.id)
            if ok and (best is None or LEVELS.index(t.level) > LEVELS.index(best[0])):
                best = (t.level, t.id, why)
        if best is None:
            return
        current = None if run is None else (run.get("pending_level") or run["level"])
        if current is not None and LEVELS.index(best[0]) <= LEVELS.index(current):
            return
        await self.rt.execute("plan.propose", {"plan": plan.id, "area": area, "level": best[0], "trigger": best[1],
                                               "evidence": best[2]}, self.rt.context(AUTOMATION))

    async def _end(self, plan: Plan, run: dict[str, Any], now: float) -> None:
        reason = None
        if plan.end is not None:
            ok, why = self.judge.holds(plan.end, run["area"], now, run["id"])
            if ok:
                reason = "end condition: " + "; ".join(why)
        if reason is None and plan.max_duration and now - epoch(run["confirmed_at"]) >= plan.max_duration:
            reason = f"plan ran its longest time ({int(plan.max_duration / 3600)} h)"
        if reason is not None:
            await self.rt.execute("plan.end", {"run": run["id"], "reason": reason}, self.rt.context(AUTOMATION))

    async def sweep_loop(self, every: float) -> None:
        """Judge plans on the clock too (ends by duration and recoveries when no data flows)."""
        while True:
            await self.rt.clock.sleep(every)
            try:
                await self.sweep()
            except Exception:  # keep sweeping; one bad round must not stop recoveries for good
                log.exception("plan sweep failed")

    async def sweep(self) -> None:
        """Judge every plan once on the runs as stored (safe on any process, on several at once)."""
        await self.load()
        await self.tick(max(self.tracker.latest, epoch(self.rt.now())))

    def listing(self) -> list[dict[str, Any]]:
        """Return the plans with their live run."""
        return [{**p.public(), "run": self.run_of(p.id)} for p in self.plans.values()]


def plans_from(rt: CityBrain) -> dict[str, Plan]:
    """Load the shipped plans, or the files named in settings.extra['plans']; unknown departments fail here."""
    from citybrain.plans.loader import known_departments

    names = rt.settings.extra.get("plans") or library()
    departments = known_departments() | {e.rsplit(":", 1)[-1] for e in rt.ports.directory.types
                                         if e.startswith("urn:ngsi-ld:Organization:")}
    plans = [load_plan(n, departments) for n in names]
    return {p.id: p for p in plans}


async def setup(rt: CityBrain) -> None:
    """Load the plans and open runs, register the plan commands and watch observations and alerts."""
    desk = PlanDesk(rt, plans_from(rt))
    await rt.bus.subscribe(EVENTS, desk.on_event)  # every process: no durable, no queue
    await desk.load()
    rt.ports.plans = desk
    c.register(rt)
    situation = rt.ports.find(Ports.situation)
    if situation is not None:
        situation.listeners.append(desk.on_rows)
    for kind in ("raised", "escalated", "resolved"):
        await rt.bus.subscribe(f"cb.event.alert.{kind}", desk.on_alert)
    every = float(rt.settings.extra.get("plans_sweep", 60.0))
    rt.cluster.singleton("plans-sweep", lambda: desk.sweep_loop(every))
