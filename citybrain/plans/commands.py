"""The plan commands: propose, confirm, reject, end and close a plan run (tasks live in plans.tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.emergency import LEVELS, ROLES, normal_level, require_role
from citybrain.errors import CityBrainError, Conflict, Forbidden, NotFound, ValidationError
from citybrain.plans import effects, tasks
from citybrain.ports import Ports
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.plans import PlanDesk
    from citybrain.runtime import CityBrain

RUNS = "plan_runs"
SLOTS = "plan_slots"  # one per plan: its newest run; a new run takes the slot with a version check
LIVE = ("proposed", "active", "ended")


class Propose(msgspec.Struct, kw_only=True):
    """plan.propose: a trigger (or a person) proposes a plan at a level for an area."""

    plan: str
    level: str
    area: str | None = None
    trigger: str = "manual"
    evidence: list[str] = []


class RunRef(msgspec.Struct, kw_only=True):
    """Names a plan run, with a reason for the timeline."""

    run: str
    reason: str = ""


def _desk(rt: CityBrain) -> PlanDesk:
    from citybrain.plans import PlanDesk  # the package imports this module

    return rt.ports.own(Ports.plans, PlanDesk)


async def _run(rt: CityBrain, run_id: str, *states: str) -> tuple[dict[str, Any], int]:
    """Return a run as stored (any process may have changed it) and its version, in one of `states`."""
    run, version = await _desk(rt).fetch(run_id)
    if run is None or run["state"] not in LIVE:
        raise NotFound(f"run: unknown, closed or rejected plan run {run_id}", field="run")
    if states and run["state"] not in states:
        raise Conflict(f"run: plan run {run_id} is {run['state']}, not {' or '.join(states)}", field="run")
    return run, version


async def _declare(rt: CityBrain, payload: dict[str, Any], ctx: Context) -> None:
    """Declare a mode for a plan; a person's later declaration (a Conflict) wins over the plan's."""
    try:
        await rt.execute("mode.declare", payload, ctx)
    except CityBrainError as exc:
        await rt.emit("plan.mode.skipped", {**payload, "error": exc.detail}, ctx)


def _save(rt: CityBrain, run: dict[str, Any], version: int, ctx: Context, step: str, note: str, after: Any = None,
          ops: list[Any] | None = None, **extra: Any) -> Outcome:
    """Return the outcome writing a run at `version` (0: new): of two processes stepping one run, one commits."""
    run["timeline"].append({"step": step, "time": rt.now(), "actor": ctx.actor, "note": note, **extra})
    desk = _desk(rt)

    async def done() -> None:
        desk.follow(run, version + 1)
        if after is not None:
            await after()

    event = {"run": run["id"], "plan": run["plan"], "area": run["area"], "state": run["state"],
             "level": run["level"], "step": step, "note": note, "version": version + 1, **extra}
    return Outcome(ops=[PutDoc(RUNS, run["id"], run, expect_version=version), *(ops or [])], result=dict(run),
                   event=event, after=done)


async def propose(rt: CityBrain, cmd: Propose, ctx: Context) -> Outcome:
    """Open a proposed run, or propose a higher level for the live run of the plan."""
    require_role(ctx, "plan.propose")
    desk = _desk(rt)
    plan = desk.plans.get(cmd.plan)
    if plan is None:
        raise NotFound(f"plan: unknown plan {cmd.plan!r}; known: {', '.join(sorted(desk.plans))}", field="plan")
    level = normal_level(cmd.level) or "IV"
    area = cmd.area or desk.area_of(plan)
    if area is None or area not in rt.ports.places:
        raise ValidationError(f"area: unknown area {area}", field="area")
    run, version, slot = await desk.live(plan.id)  # from the store: another process may have opened one
    ops: list[Any] = []
    if run is not None and run["state"] == "ended":
        raise Conflict(f"plan {plan.id} is in recovery (run {run['id']}); close it first", field="plan")
    now = rt.now()
    proposal = {"level": level, "trigger": cmd.trigger, "evidence": cmd.evidence, "time": now, "actor": ctx.actor}
    if run is None:
        run = {"id": new_id(), "plan": plan.id, "area": area, "state": "proposed", "level": None,
               "pending_level": level, "proposals": [proposal], "proposed_at": now, "confirmed_at": None,
               "confirmed_by": None, "ended_at": None, "closed_at": None, "end_reason": None, "timeline": []}
        # two processes proposing at once: both take the plan's slot at the version they read, one commits
        ops.append(PutDoc(SLOTS, plan.id, {"plan": plan.id, "run": run["id"]}, expect_version=slot))
    else:
        current = run.get("pending_level") or run["level"]
        if current and LEVELS.index(level) <= LEVELS.index(current):
            raise Conflict(f"plan {plan.id} is already at or proposed for level {current}", field="level")
        run["pending_level"] = level
        run["proposals"].append(proposal)
    auto = plan.auto_confirm or desk.auto_confirm
    run_id = run["id"]

    async def after() -> None:
        if auto:
            await rt.execute("plan.confirm", {"run": run_id, "reason": "auto-confirm (drill)"},
                             ctx.child("system:auto-confirm"))

    return _save(rt, run, version, ctx, "propose", f"{cmd.trigger}: " + "; ".join(cmd.evidence), after, ops,
                 proposed=level, trigger=cmd.trigger)


async def confirm(rt: CityBrain, cmd: RunRef, ctx: Context) -> Outcome:
    """Confirm the proposed level: declare the mode, issue tasks, put overrides in force, dispatch resources."""
    run, version = await _run(rt, cmd.run, "proposed", "active")
    desk = _desk(rt)
    plan = desk.plans[run["plan"]]
    auto = plan.auto_confirm or desk.auto_confirm
    roles = (*plan.confirm_roles, "admin") + (("system",) if auto else ())
    role = ctx.actor.split(":", 1)[0]
    if role not in roles:
        raise Forbidden(f"plan.confirm needs role {', '.join(plan.confirm_roles)}; {ctx.actor!r} is {role!r}",
                        field="actor")
    level = run.get("pending_level")
    if not level:
        raise Conflict(f"run {cmd.run} has no proposal waiting for confirmation", field="run")
    first = run["state"] == "proposed"
    run.update(state="active", level=level, pending_level=None, confirmed_by=ctx.actor)
    run["confirmed_at"] = run["confirmed_at"] or rt.now()

    async def after() -> None:
        await _declare(rt, {"area": run["area"], "mode": "emergency", "level": level,
                            "reason": f"plan {plan.id} confirmed", "plan": run["id"]}, ctx.child())
        issued = await tasks.issued_keys(rt, run["id"])
        cases = await tasks.open_cases(rt, plan, run, level, ctx.child(), issued)
        await rt.execute("plan.tasks.issue", {"run": run["id"], "level": level, "cases": cases}, ctx.child())
        if first:
            await desk.overrides.apply(run["id"], plan, ctx.child())
            await effects.preposition(rt, run, plan, ctx.child())

    return _save(rt, run, version, ctx, "confirm", cmd.reason, after, confirmed=level)


async def reject(rt: CityBrain, cmd: RunRef, ctx: Context) -> Outcome:
    """Reject a proposed plan run."""
    require_role(ctx, "plan.reject")
    run, version = await _run(rt, cmd.run, "proposed")
    run["state"] = "rejected"
    return _save(rt, run, version, ctx, "reject", cmd.reason)


async def end(rt: CityBrain, cmd: RunRef, ctx: Context) -> Outcome:
    """End an active run: the area goes to recovery, overrides are restored, resources released."""
    require_role(ctx, "plan.end")
    run, version = await _run(rt, cmd.run, "active")
    desk = _desk(rt)
    plan = desk.plans[run["plan"]]
    run.update(state="ended", ended_at=rt.now(), end_reason=cmd.reason, pending_level=None)

    async def after() -> None:
        await _declare(rt, {"area": run["area"], "mode": "recovery", "plan": run["id"],
                            "reason": f"plan {plan.id} ended: {cmd.reason}"}, ctx.child())
        await desk.overrides.restore(run["id"], plan, ctx.child())
        await effects.release(rt, run["id"], ctx.child())
        desk.judge.reset(run["id"])

    return _save(rt, run, version, ctx, "end", cmd.reason, after)


async def close(rt: CityBrain, cmd: RunRef, ctx: Context) -> Outcome:
    """Close a run after recovery: the area returns to normal."""
    require_role(ctx, "plan.close")
    run, version = await _run(rt, cmd.run, "ended")
    run.update(state="closed", closed_at=rt.now())
    desk = _desk(rt)

    async def after() -> None:
        board = rt.ports.modes
        if board.declared(run["area"])["mode"] == "recovery":
            await _declare(rt, {"area": run["area"], "mode": "normal", "plan": run["id"],
                                "reason": f"plan {run['plan']} recovery over"}, ctx.child())
        desk.judge.reset(run["plan"])

    return _save(rt, run, version, ctx, "close", cmd.reason or "recovery over", after)


async def _run_area(rt: CityBrain, run_id: str) -> list[str | None]:
    doc = await rt.store.get_doc(RUNS, run_id)
    return [doc.data.get("area")] if doc is not None else []  # an unknown run: the handler says NotFound


async def _locate_propose(rt: CityBrain, cmd: Propose) -> list[str | None]:
    """A proposal touches the area it names (none: the whole city)."""
    return [cmd.area]


async def _locate_run(rt: CityBrain, cmd: RunRef | tasks.Issue | tasks.Report) -> list[str | None]:
    """A step on a plan run touches the run's area."""
    return await _run_area(rt, cmd.run)


async def _locate_task(rt: CityBrain, cmd: tasks.TaskStep) -> list[str | None]:
    """A plan task touches its community (a community's task) or its run's area (a department's)."""
    doc = await rt.store.get_doc(tasks.TASKS, cmd.task)
    if doc is None:
        return []
    if doc.data.get("kind") == "community":
        return [doc.data.get("assignee")]
    return await _run_area(rt, str(doc.data.get("run")))


def register(rt: CityBrain) -> None:
    """Register the plan and plan-task commands (each judged on the area of the run or task it steps)."""
    reg = rt.commands.register
    reg("plan.propose", Propose, propose, "propose a plan at a level (triggers, or a person)", ROLES,
        place=_locate_propose)
    reg("plan.confirm", RunRef, confirm, "confirm a proposed plan level (command centre)", ROLES, place=_locate_run)
    reg("plan.reject", RunRef, reject, "reject a proposed plan", ROLES, place=_locate_run)
    reg("plan.end", RunRef, end, "end an active plan: recovery, overrides restored, resources released", ROLES,
        place=_locate_run)
    reg("plan.close", RunRef, close, "close a plan after recovery: the area returns to normal", ROLES,
        place=_locate_run)
    reg("plan.tasks.issue", tasks.Issue, tasks.issue, "issue a plan run's tasks at its level", ("system",),
        place=_locate_run)
    reg("plan.task.ack", tasks.TaskStep, tasks.ack, "acknowledge a plan task", place=_locate_task)
    reg("plan.task.done", tasks.TaskStep, tasks.done, "report a plan task done", place=_locate_task)
    reg("plan.report", tasks.Report, tasks.report, "community reports during an active plan", place=_locate_run)
