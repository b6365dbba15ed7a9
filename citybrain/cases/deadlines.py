"""Time limits: warnings before the limit, escalation when overdue (department head, then command centre).

The checker may run on any process of a node, on several at once, and whoever wrote a case last may be
gone: it reads running cases from the store, and each warning or escalation reads the case from the store
again, checks that it is still due and writes with the version it read. Of two processes escalating the same
clock one commits, the other meets a Conflict, so every clock is warned and escalated once per level.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.cases import model as m
from citybrain.cases.desk import desk_of
from citybrain.clock import parse_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, Conflict

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.cases")
CHECKER = "system:deadline-checker"


class Clocked(msgspec.Struct, kw_only=True):
    """A case (task None: the case clock) or one of its tasks, and an escalation level."""

    id: str
    task: str | None = None
    level: int = 0
    if_due: bool = False  # the checker: refuse unless the stored case says the step is due now


def _still_due(rt: CityBrain, case: dict[str, Any], cmd: Clocked, action: str) -> None:
    """Raise Conflict unless the stored case is running and the checker's step is due (it may have changed since
    the checker listed it: filed elsewhere, extended, closed)."""
    wanted = [level for a, task, level in due(rt, case) if a == action and task == cmd.task]
    if case["state"] not in m.RUNNING or not wanted or max(wanted) < cmd.level:
        raise Conflict(f"case {case['id']}: {action} of {cmd.task or 'the case clock'} is no longer due",
                       field="task")


def _holder(case: dict[str, Any], task_id: str | None) -> dict[str, Any]:
    if task_id is None:
        return case
    for t in case["tasks"]:
        if t["id"] == task_id:
            return t
    raise Conflict(f"case {case['id']} has no task {task_id}", field="task")


async def warn(rt: CityBrain, cmd: Clocked, ctx: Context) -> Outcome:
    """Warn that a time limit is near (recorded once per clock)."""
    desk = desk_of(rt)
    m.require(ctx, "case.warn")
    case, version = await desk.load(cmd.id, fresh=True)  # rare and decisive: never on a cached copy
    holder = _holder(case, cmd.task)
    if cmd.if_due:
        _still_due(rt, case, cmd, "warn")
    if holder.get("warned"):
        raise Conflict("already warned", field="task")
    holder["warned"] = True
    who = holder.get("department", desk.catalog.router.command_centre)
    m.step(case, ctx, rt.now(), "warn", f"time limit {holder['deadline']} is near; told {who}", task=cmd.task)
    return desk.save(case, version)


async def escalate(rt: CityBrain, cmd: Clocked, ctx: Context) -> Outcome:
    """Escalate an overdue clock: level 1 the department head, level 2 the command centre."""
    desk = desk_of(rt)
    m.require(ctx, "case.escalate")
    case, version = await desk.load(cmd.id, fresh=True)  # rare and decisive: never on a cached copy
    holder = _holder(case, cmd.task)
    if cmd.level <= holder.get("escalation", 0) or cmd.level not in (1, 2):
        raise Conflict(f"already at escalation level {holder.get('escalation', 0)}", field="level")
    if cmd.if_due:
        _still_due(rt, case, cmd, "escalate")
    holder["escalation"] = cmd.level
    centre = desk.catalog.router.command_centre
    to = f"head:{holder['department']}" if cmd.level == 1 and cmd.task else centre
    holder["escalated_to"] = to
    holder["escalated_at"] = rt.now()
    m.refresh(case)
    m.step(case, ctx, rt.now(), "escalate", f"overdue since {holder['deadline']}: escalated to {to}",
           task=cmd.task, level=cmd.level, to=to)
    return desk.save(case, version)


def due(rt: CityBrain, case: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    """Return what the checker should do now for one case: (warn|escalate, task id, level)."""
    desk = desk_of(rt)
    policy = desk.catalog.policy
    cal = desk.catalog.calendar(desk.category_of(case), case.get("city"))
    now = rt.clock.now()
    out: list[tuple[str, str | None, int]] = []
    clocks: list[tuple[dict[str, Any], str | None]] = [(case, None)]
    clocks += [(t, t["id"]) for t in case["tasks"] if t["state"] in (m.PENDING, m.ACCEPTED)]
    for holder, task_id in clocks:
        if not holder.get("deadline"):
            continue
        deadline = parse_time(holder["deadline"])
        level = holder.get("escalation", 0)
        if now >= deadline:
            late = cal.hours_between(deadline, now)
            want = 2 if task_id is None or late >= policy["command_after_hours"] else (
                1 if late >= policy["head_after_hours"] else 0)
            if want > level:
                out.append(("escalate", task_id, want))
        elif not holder.get("warned") and holder.get("warn_at") and now >= parse_time(holder["warn_at"]):
            out.append(("warn", task_id, 0))
    return out


async def check_deadlines(rt: CityBrain) -> dict[str, int]:
    """Check every running case in the store once: warn, escalate; return how many of each this call recorded."""
    counts = {"checked": 0, "warn": 0, "escalate": 0}
    offset = 0
    while True:
        batch = await rt.store.list_docs(m.COLLECTION, where={"open": True}, limit=1000, offset=offset)
        for doc in batch:
            if doc.data["state"] not in m.RUNNING:
                continue
            counts["checked"] += 1
            for action, task_id, level in due(rt, doc.data):
                ctx = rt.context(CHECKER)
                try:
                    await rt.execute(f"case.{action}", {"id": doc.id, "task": task_id, "level": level,
                                                        "if_due": True}, ctx)
                    counts[action] += 1
                except CityBrainError as exc:  # changed meanwhile (another checker was first): the next round
                    # reads the new state from the store
                    log.debug("deadline check of %s: %s", doc.id, exc.detail)
        if len(batch) < 1000:
            return counts
        offset += 1000


async def deadline_loop(rt: CityBrain) -> None:
    """Run check_deadlines every check_seconds of the runtime clock (a fake clock drives it in tests)."""
    every = desk_of(rt).catalog.policy["check_seconds"]
    while True:
        await rt.clock.sleep(every)
        try:
            await check_deadlines(rt)
        except Exception:  # keep checking; one bad round must not stop escalation for good
            log.exception("deadline check failed")
