"""Exceptions that need approval: send back (回退), extension (延期), suspension (挂账), cancellation (作废)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.cases import model as m
from citybrain.cases.desk import CaseDesk, desk_of
from citybrain.clock import iso, parse_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import Conflict, Forbidden, ValidationError

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

Kind = Literal["send_back", "extension", "suspend", "cancel"]


class RequestException(msgspec.Struct, kw_only=True):
    """Ask for an exception on a case (or on the acting department's task)."""

    id: str
    kind: Kind
    reason: str
    task: str | None = None
    hours: float = 0.0  # extension: extra working hours


class ApproveException(msgspec.Struct, kw_only=True):
    """Approve or reject a pending exception."""

    id: str
    exception: str
    approve: bool = True
    note: str = ""


class Resume(msgspec.Struct, kw_only=True):
    """Take a case out of the problem ledger (挂账) and restart its clocks."""

    id: str
    note: str = ""


async def request_exception(rt: CityBrain, cmd: RequestException, ctx: Context) -> Outcome:
    """Record an exception request; nothing changes until the approver says yes."""
    desk = desk_of(rt)
    role = m.require(ctx, "case.request_exception")
    case, version = await desk.load(cmd.id)
    if case["state"] in m.FINAL or case["state"] == m.SUSPENDED:
        raise Conflict(f"case {cmd.id} is {case['state']}", field="state")
    if not cmd.reason.strip():
        raise ValidationError("reason: say why", field="reason")
    task_id = None
    if cmd.kind in ("send_back", "extension") or (role == "dept" and cmd.task is not None):
        task_id = m.task_for(case, ctx.actor, cmd.task, (m.PENDING, m.ACCEPTED))["id"]
    elif role == "dept" and m.department_of(ctx.actor) not in case["departments"]:
        raise Forbidden("a department may only ask about cases it holds a task in", field="actor")
    if cmd.kind == "extension" and cmd.hours <= 0:
        raise ValidationError("hours: an extension needs a positive number of working hours", field="hours")
    if any(e["state"] == "pending" and e["kind"] == cmd.kind and e.get("task") == task_id for e in case["exceptions"]):
        raise Conflict(f"a {cmd.kind} request is already pending", field="kind")
    exc = {"id": f"X{len(case['exceptions']) + 1}", "kind": cmd.kind, "task": task_id, "hours": cmd.hours,
           "reason": cmd.reason, "state": "pending", "requested_by": ctx.actor, "requested_at": rt.now(),
           "decided_by": None, "decided_at": None, "note": ""}
    case["exceptions"].append(exc)
    m.step(case, ctx, rt.now(), f"request-{cmd.kind}", cmd.reason, exception=exc["id"], task=task_id)
    return desk.save(case, version, result={"id": case["id"], "exception": exc["id"], "state": case["state"]})


async def approve_exception(rt: CityBrain, cmd: ApproveException, ctx: Context) -> Outcome:
    """Decide an exception; approval applies it (the requester cannot approve their own request)."""
    desk = desk_of(rt)
    role = m.require(ctx, "case.approve_exception")
    case, version = await desk.load(cmd.id)
    found = [e for e in case["exceptions"] if e["id"] == cmd.exception]
    if not found:
        raise Conflict(f"case {cmd.id} has no exception {cmd.exception}", field="exception")
    exc = found[0]
    if exc["state"] != "pending":
        raise Conflict(f"exception {exc['id']} is already {exc['state']}", field="exception")
    if role != m.APPROVER[exc["kind"]]:
        raise Forbidden(f"{exc['kind']} is approved by role {m.APPROVER[exc['kind']]}", field="actor")
    if ctx.actor == exc["requested_by"]:
        raise Forbidden("the requester cannot approve their own request", field="actor")
    now = rt.now()
    exc.update(state="approved" if cmd.approve else "rejected", decided_by=ctx.actor, decided_at=now, note=cmd.note)
    if cmd.approve:
        if case["state"] in m.FINAL or case["state"] == m.SUSPENDED:
            raise Conflict(f"case {cmd.id} is {case['state']}", field="state")
        apply(desk, case, exc, now)
    name = f"{'approve' if cmd.approve else 'reject'}-{exc['kind']}"
    m.step(case, ctx, now, name, cmd.note, exception=exc["id"])
    return desk.save(case, version)


def apply(desk: CaseDesk, c: dict[str, Any], exc: dict[str, Any], now: str) -> None:
    """Carry out an approved exception on the case document."""
    kind = exc["kind"]
    task = next((t for t in c["tasks"] if t["id"] == exc.get("task")), None)
    if kind == "send_back" and task is not None:
        task["state"] = m.WITHDRAWN
        if task["role"] == "lead" or not any(t["state"] in (m.PENDING, m.ACCEPTED) for t in m.live_tasks(c)):
            for t in c["tasks"]:
                if t["state"] in (m.PENDING, m.ACCEPTED):
                    t["state"] = m.WITHDRAWN
            c["route"], c["queue"] = None, desk.catalog.router.command_centre
            m.set_state(c, m.FILED)  # back to the command centre to dispatch again
        else:
            m.set_state(c, c["state"])
    elif kind == "extension" and task is not None:
        cal = desk.catalog.calendar(desk.category_of(c), c.get("city"))
        hours = float(exc["hours"])
        task["deadline"] = iso(cal.add_hours(parse_time(task["deadline"]), hours))
        task["warn_at"] = iso(cal.add_hours(parse_time(task["warn_at"]), hours))
        task["warned"], task["escalation"] = False, 0
        if c.get("deadline") and task["deadline"] > c["deadline"]:
            c["deadline"] = task["deadline"]
            c["escalation"] = 0
        m.set_state(c, c["state"])
    elif kind == "suspend":
        c["suspended_from"], c["suspended_at"] = c["state"], now
        m.set_state(c, m.SUSPENDED)
    elif kind == "cancel":
        for t in c["tasks"]:
            if t["state"] in (m.PENDING, m.ACCEPTED):
                t["state"] = m.WITHDRAWN
        m.set_state(c, m.CANCELLED)


async def resume(rt: CityBrain, cmd: Resume, ctx: Context) -> Outcome:
    """Resume a suspended case; every clock moves on by the working time it spent in the ledger."""
    desk = desk_of(rt)
    m.require(ctx, "case.resume")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.SUSPENDED)
    cal = desk.catalog.calendar(desk.category_of(case), case.get("city"))
    now = rt.clock.now()
    paused = max(cal.hours_between(parse_time(case["suspended_at"]), now), 0.0)
    for holder in [case, *case["tasks"]]:
        for key in ("deadline", "warn_at"):
            if holder.get(key):
                holder[key] = iso(cal.add_hours(parse_time(holder[key]), paused))
    case["suspended_hours"] = case.get("suspended_hours", 0.0) + paused
    m.set_state(case, case.pop("suspended_from"))
    case.pop("suspended_at", None)
    m.step(case, ctx, iso(now), "resume", cmd.note or f"clocks moved on by {paused:.2f} working hours")
    return desk.save(case, version)
