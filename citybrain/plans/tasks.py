"""Plan tasks: issued to departments and communities when a plan is confirmed, acknowledged, completed.

Department tasks also become cases of coordinated disposal (when the cases component runs and knows the
department); community tasks go down to the community nodes (when federation runs). The task documents
in `plan_tasks` are the plan's own record either way.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.clock import iso
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.emergency import LEVELS
from citybrain.errors import CityBrainError, Conflict, Forbidden, NotFound
from citybrain.plans.spec import Plan, Task
from citybrain.ports import Ports
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.plans")
TASKS = "plan_tasks"
OUTSIDERS = frozenset({"citizen", "anonymous", "external_user", "device"})


class Issue(msgspec.Struct, kw_only=True):
    """plan.tasks.issue: write the tasks of a run at a level (cases already opened, by task key)."""

    run: str
    level: str
    cases: dict[str, str] = {}


class TaskStep(msgspec.Struct, kw_only=True):
    """plan.task.ack / plan.task.done: a department or community steps its task."""

    task: str
    note: str = ""


class Report(msgspec.Struct, kw_only=True):
    """plan.report: communities report during an active plan (one batch per reporting period)."""

    run: str
    reports: list[dict[str, Any]]


def wanted(task: Task, level: str) -> bool:
    """Tell whether a task is issued at a level."""
    return LEVELS.index(level) >= LEVELS.index(task.min_level)


def communities_of(rt: CityBrain, area: str, which: str) -> list[str]:
    """Return the communities of an area: all, or those with a low-lying grid cell."""
    places = rt.ports.places
    coms = [c for c in places.of_type("Community") if places.within(c.id, area)]
    if which == "low-lying":
        coms = [c for c in coms if any(bool(g.value("lowLying")) for g in
                                       (places.get(x) for x in places.children.get(c.id, [])) if g is not None)]
    return [c.id for c in coms]


async def issued_keys(rt: CityBrain, run_id: str) -> set[str]:
    """Return the keys (task:assignee) of the tasks a run has issued."""
    return {d.data["key"] for d in await rt.store.list_docs(TASKS, {"run": run_id}, limit=1_000_000)}


async def open_cases(rt: CityBrain, plan: Plan, run: dict[str, Any], level: str, ctx: Context,
                     issued: set[str]) -> dict[str, str]:
    """Open a case per department task (cases component present and department known); return key -> case id."""
    desk = rt.ports.find(Ports.cases)
    if desk is None:
        return {}
    departments = getattr(desk.catalog.router, "departments", {})
    out: dict[str, str] = {}
    for t in plan.tasks:
        if not t.department or not wanted(t, level) or t.department not in departments:
            continue
        key = f"{t.id}:{t.department}"
        if key in issued:
            continue
        try:
            got = await rt.execute("case.intake", {
                "channel": "plan", "category": t.category or "E9901", "place": run["area"],
                "title": f"[{plan.id} {level}] {t.title}"[:200], "description": t.title, "source_id": run["id"],
                "severity": level, "attributes": {"plan": plan.id, "run": run["id"], "task": t.id}}, ctx.child())
            await rt.execute("case.file", {"id": got["id"], "note": f"plan {plan.id} level {level}"},
                             ctx.child("system:plans"))
            await rt.execute("case.dispatch", {"id": got["id"], "lead": t.department, "note": f"plan {plan.id}"},
                             ctx.child("system:plans"))
            out[key] = got["id"]
        except CityBrainError as exc:  # the case desk refused: the plan task still stands on its own
            log.warning("plan %s: no case for task %s: %s", plan.id, t.id, exc.detail)
    return out


def build_tasks(rt: CityBrain, plan: Plan, run: dict[str, Any], level: str, cases: dict[str, str],
                issued: set[str]) -> list[dict[str, Any]]:
    """Return the new task documents of a run at a level (skipping tasks issued before)."""
    now = rt.clock.now()
    docs: list[dict[str, Any]] = []
    for t in plan.tasks:
        if not wanted(t, level):
            continue
        targets = [f"urn:ngsi-ld:Organization:{t.department}"] if t.department else communities_of(
            rt, run["area"], t.communities or "all")
        for target in targets:
            key = f"{t.id}:{t.department or target}"
            if key in issued:
                continue
            docs.append({"id": new_id(), "key": key, "run": run["id"], "plan": plan.id, "task": t.id,
                         "title": t.title, "kind": "department" if t.department else "community",
                         "department": t.department, "assignee": target, "level": level, "state": "issued",
                         "issued_at": iso(now), "ack_by": iso(now + timedelta(seconds=t.acknowledge)),
                         "deadline": iso(now + timedelta(seconds=t.within)), "acknowledged_at": None,
                         "done_at": None, "case": cases.get(key), "note": ""})
    return docs


async def issue(rt: CityBrain, cmd: Issue, ctx: Context) -> Outcome:
    """Write the run's tasks for its level, and send community tasks down to their nodes."""
    from citybrain.plans import PlanDesk  # the package imports this module

    desk = rt.ports.own(Ports.plans, PlanDesk)
    run, _ = await desk.fetch(cmd.run)  # as stored: the run may have been confirmed on another process
    if run is None or run["state"] in ("closed", "rejected"):
        raise NotFound(f"run: unknown or closed plan run {cmd.run}", field="run")
    plan: Plan = desk.plans[run["plan"]]
    issued = await issued_keys(rt, cmd.run)
    docs = build_tasks(rt, plan, run, cmd.level, cmd.cases, issued)
    ops: list[Any] = [PutDoc(TASKS, d["id"], d, expect_version=0) for d in docs]
    fed = rt.ports.find(Ports.federation)
    sent = 0
    if fed is not None and getattr(fed, "role", "") == "city":
        for d in docs:
            if d["kind"] == "community":
                try:
                    down = fed.down_ops(d["assignee"], "plan.task", d, ctx)
                except CityBrainError:  # no node runs this community: the task stays on the city node
                    continue
                ops += down
                sent += len(down)
    event = {"run": cmd.run, "plan": plan.id, "level": cmd.level, "tasks": [d["id"] for d in docs],
             "departments": sorted({d["department"] for d in docs if d["department"]}),
             "communities": len({d["assignee"] for d in docs if d["kind"] == "community"}),
             "cases": sorted(cmd.cases.values()), "sent_down": sent}
    return Outcome(ops=ops, result=event, event=event)


def _check(ctx: Context, task: dict[str, Any]) -> None:
    role = ctx.actor.split(":", 1)[0]
    if role in OUTSIDERS:
        raise Forbidden(f"{ctx.actor!r} may not act on plan tasks", field="actor")
    parts = ctx.actor.split(":")
    if role == "dept" and len(parts) > 1 and task["department"] and parts[1] != task["department"]:
        raise Forbidden(f"task {task['id']} belongs to {task['department']}, not {parts[1]}", field="actor")


async def _step(rt: CityBrain, cmd: TaskStep, ctx: Context, state: str) -> Outcome:
    doc = await rt.store.get_doc(TASKS, cmd.task)
    if doc is None:
        raise NotFound(f"task: unknown plan task {cmd.task}", field="task")
    task = doc.data
    _check(ctx, task)
    order = ("issued", "acknowledged", "done")
    if order.index(task["state"]) >= order.index(state):
        raise Conflict(f"task {cmd.task} is already {task['state']}", field="task")
    now = rt.now()
    task["acknowledged_at"] = task["acknowledged_at"] or now
    if state == "done":
        task["done_at"] = now
    task["state"], task["note"] = state, cmd.note or task["note"]
    case = task.get("case")

    async def after() -> None:
        if case and rt.ports.has(Ports.cases) and task["department"]:
            name = "case.accept" if state == "acknowledged" else "case.feedback"
            try:
                await rt.execute(name, {"id": case, "note": cmd.note}, ctx.child(f"dept:{task['department']}:plan"))
            except CityBrainError as exc:
                log.info("plan task %s: %s on case %s refused: %s", task["id"], name, case, exc.detail)

    data = {"task": task["id"], "run": task["run"], "state": state, "assignee": task["assignee"], "case": case}
    return Outcome(ops=[PutDoc(TASKS, task["id"], task, expect_version=doc.version)], result=task, event=data,
                   after=after)


async def ack(rt: CityBrain, cmd: TaskStep, ctx: Context) -> Outcome:
    """Acknowledge a plan task (its case, if any, is accepted too)."""
    return await _step(rt, cmd, ctx, "acknowledged")


async def done(rt: CityBrain, cmd: TaskStep, ctx: Context) -> Outcome:
    """Report a plan task done (its case, if any, gets the department's feedback)."""
    return await _step(rt, cmd, ctx, "done")


async def report(rt: CityBrain, cmd: Report, ctx: Context) -> Outcome:
    """Record a batch of community reports for an active run."""
    from citybrain.plans import PlanDesk  # the package imports this module

    run, _ = await rt.ports.own(Ports.plans, PlanDesk).fetch(cmd.run)  # as stored, whichever process confirmed it
    if run is None or run["state"] != "active":
        raise Conflict(f"run: plan run {cmd.run} is not active", field="run")
    role = ctx.actor.split(":", 1)[0]
    if role in OUTSIDERS:
        raise Forbidden(f"{ctx.actor!r} may not report for a plan", field="actor")
    return Outcome(result={"run": cmd.run, "reports": len(cmd.reports)},
                   event={"run": cmd.run, "plan": run["plan"], "reports": cmd.reports, "time": rt.now()})
