"""Simulated handlers for drills: departments and communities acknowledge and complete their plan tasks.

Each task gets an acknowledge delay and a completion delay drawn (seeded by the task's key) as a share of
its limits, so most tasks are on time and some are late, the same way on every run of the same drill.
Communities send their reports at the plan's reporting cadence while a run is active.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from citybrain.clock import parse_time
from citybrain.errors import CityBrainError, Conflict
from citybrain.plans.tasks import TASKS

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Handlers:
    """Acts for every assignee of the drill's plan tasks when their simulated moment has come."""

    def __init__(self, rt: CityBrain, seed: int = 20160720) -> None:
        self.rt = rt
        self.seed = seed
        self.due: dict[str, tuple[float, float]] = {}  # task id -> (ack at, done at), epoch seconds
        self.last_report: dict[str, float] = {}  # run id -> time of the last community report batch
        self.acted = 0

    def _schedule(self, task: dict[str, Any]) -> tuple[float, float]:
        got = self.due.get(task["id"])
        if got is None:
            rng = random.Random(f"{self.seed}:{task['run']}:{task['key']}")
            issued = parse_time(task["issued_at"]).timestamp()
            ack_limit = parse_time(task["ack_by"]).timestamp() - issued
            limit = parse_time(task["deadline"]).timestamp() - issued
            ack = issued + ack_limit * rng.uniform(0.2, 1.3)
            done = max(ack + 60.0, issued + limit * rng.uniform(0.3, 1.15))
            got = self.due[task["id"]] = (ack, done)
        return got

    @staticmethod
    def actor_of(task: dict[str, Any]) -> str:
        """Return the simulated actor for a task's assignee."""
        if task["department"]:
            return f"dept:{task['department']}:drill"
        return f"community_operator:{task['assignee'].rsplit(':', 1)[-1]}:drill"

    async def act(self) -> int:
        """Acknowledge and complete every task whose moment has passed; send due community reports."""
        now = self.rt.clock.now().timestamp()
        n = 0
        for doc in await self.rt.store.list_docs(TASKS, limit=1_000_000):
            task = doc.data
            if task["state"] == "done":
                continue
            ack, done = self._schedule(task)
            for state, at, name in (("issued", ack, "plan.task.ack"), ("acknowledged", done, "plan.task.done")):
                if task["state"] == state and now >= at:
                    try:
                        await self.rt.execute(name, {"task": task["id"], "note": "drill"},
                                              self.rt.context(self.actor_of(task)))
                    except CityBrainError:
                        break
                    task["state"] = "acknowledged" if state == "issued" else "done"
                    n += 1
        n += await self._reports(now)
        self.acted += n
        return n

    async def _reports(self, now: float) -> int:
        desk = self.rt.ports.plans
        sent = 0
        for run in list(desk.runs.values()):
            plan = desk.plans.get(run["plan"])
            if run["state"] != "active" or plan is None or not plan.reporting:
                continue
            last = self.last_report.get(run["id"], parse_time(run["confirmed_at"]).timestamp())
            if now - last < plan.reporting:
                continue
            places = self.rt.ports.places
            coms = [c.id for c in places.of_type("Community") if places.within(c.id, run["area"])]
            rng = random.Random(f"{self.seed}:{run['id']}:{int(now)}")
            reports = [{"community": c, "status": "incident" if rng.random() < 0.05 else "ok"} for c in coms]
            try:
                await self.rt.execute("plan.report", {"run": run["id"], "reports": reports},
                                      self.rt.context("community_operator:drill"))
            except Conflict:  # the run ended (or moved on) since this copy of it was read
                self.last_report.pop(run["id"], None)
                continue
            self.last_report[run["id"]] = now
            sent += 1
        return sent
