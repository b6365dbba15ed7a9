"""Case documents: states (GB/T 30428), roles, tasks and the timeline every step appends to.

Roles come from the actor string `role:name` of the command context ("supervisor:li", "command:wang",
"dept:transport:zhao", "head:transport:liu", "citizen:…", "system:…"). This is a stand-in until the trust
layer supplies authenticated identities with roles; the rule each command checks stays the same.
"""

from __future__ import annotations

from typing import Any

from citybrain.context import Context
from citybrain.errors import Conflict, Forbidden

COLLECTION = "cases"

INTAKE, FILED, DISPATCHED, HANDLING = "intake", "filed", "dispatched", "handling"
FEEDBACK, VERIFIED, CLOSED, EVALUATED = "feedback", "verified", "closed", "evaluated"
SUSPENDED, CANCELLED, MERGED = "suspended", "cancelled", "merged"
STATES = (INTAKE, FILED, DISPATCHED, HANDLING, FEEDBACK, VERIFIED, CLOSED, EVALUATED, SUSPENDED, CANCELLED, MERGED)
FINAL = frozenset({CLOSED, EVALUATED, CANCELLED, MERGED})
RUNNING = frozenset({FILED, DISPATCHED, HANDLING})  # clocks run in these states

# task states
PENDING, ACCEPTED, DONE, WITHDRAWN = "pending", "accepted", "done", "withdrawn"

# who may run which command; "system" is the automation (auto-filing, routing, the deadline checker)
ROLES: dict[str, tuple[str, ...]] = {
    "case.intake": (),  # anyone: citizens, grid workers, communities, the risk engine
    "case.file": ("supervisor", "system"),
    "case.dispatch": ("command", "system"),
    "case.accept": ("dept",),
    "case.feedback": ("dept",),
    "case.verify": ("supervisor",),
    "case.close": ("supervisor", "system"),
    "case.evaluate": ("supervisor", "command", "evaluator", "system"),
    "case.request_exception": ("dept", "command", "supervisor"),
    "case.approve_exception": ("command", "supervisor"),
    "case.resume": ("command",),
    "case.merge": ("supervisor", "command"),
    "case.warn": ("system",),
    "case.escalate": ("system",),
    "matter.apply": (),
}
# which role approves which exception (the requester never approves their own)
APPROVER = {"send_back": "command", "extension": "command", "suspend": "command", "cancel": "supervisor"}


# roles of authenticated identities (citybrain.trust) -> the case roles of GB/T 30428 above
TRUST_ROLES = {"command_centre": "command", "city_operator": "command", "department_handler": "dept",
               "auditor": "evaluator", "community_operator": "community", "grid_worker": "grid"}


def role_of(actor: str) -> str:
    """Return the case role of an actor string (its first part, with trust roles mapped to case roles)."""
    role = actor.split(":", 1)[0]
    return TRUST_ROLES.get(role, role)


def department_of(actor: str) -> str | None:
    """Return the department of a dept:<id>:<name>, head:<id>:<name> or department_handler:<id>:<name> actor."""
    parts = actor.split(":")
    return parts[1] if parts[0] in ("dept", "head", "department_handler") and len(parts) > 1 else None


def require(ctx: Context, command: str) -> str:
    """Raise Forbidden unless the context's actor has a role allowed for the command; return the role."""
    role = role_of(ctx.actor)
    allowed = ROLES.get(command, ())
    if role == "admin":
        return role
    if allowed and role not in allowed:
        raise Forbidden(f"{command} needs role {' or '.join(allowed)}; {ctx.actor!r} is {role!r}",
                        field="actor")
    return role


def expect(case: dict[str, Any], *states: str) -> None:
    """Raise Conflict unless the case is in one of `states`."""
    if case["state"] not in states:
        raise Conflict(f"case {case['id']} is {case['state']}; this step needs {' or '.join(states)}",
                       field="state", state=case["state"])


def step(case: dict[str, Any], ctx: Context, time: str, name: str, note: str = "", **extra: Any) -> None:
    """Append a timeline entry (who, when, which step, the resulting state, a note)."""
    entry = {"time": time, "actor": ctx.actor, "step": name, "state": case["state"], "note": note,
             "context": ctx.id}
    entry.update(extra)
    case["timeline"].append(entry)
    case["updated_at"] = time


def set_state(case: dict[str, Any], state: str) -> None:
    """Change state and keep the derived filter fields (open, departments, overdue) current."""
    case["state"] = state
    case["open"] = state not in FINAL
    refresh(case)


def refresh(case: dict[str, Any]) -> None:
    """Recompute fields that list filters read: departments with live tasks, overdue."""
    live = [t for t in case["tasks"] if t["state"] != WITHDRAWN]
    case["departments"] = sorted({t["department"] for t in live})
    case["overdue"] = bool(case["state"] in RUNNING and (
        any(t.get("escalation", 0) > 0 and t["state"] in (PENDING, ACCEPTED) for t in live)
        or case.get("escalation", 0) > 0))


def live_tasks(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the tasks that still count (not withdrawn)."""
    return [t for t in case["tasks"] if t["state"] != WITHDRAWN]


def task_for(case: dict[str, Any], actor: str, task_id: str | None, states: tuple[str, ...]) -> dict[str, Any]:
    """Find the acting department's task (by id, or its only task in `states`); Forbidden for others."""
    dept = department_of(actor)
    if task_id is not None:
        found = [t for t in case["tasks"] if t["id"] == task_id]
        if not found:
            raise Conflict(f"case {case['id']} has no task {task_id}", field="task")
        task = found[0]
        if dept is not None and task["department"] != dept:
            raise Forbidden(f"task {task_id} belongs to {task['department']}, not {dept}", field="actor")
    else:
        mine = [t for t in case["tasks"] if (dept is None or t["department"] == dept) and t["state"] in states]
        if len(mine) != 1:
            what = "no" if not mine else "more than one"
            raise Conflict(f"case {case['id']}: {what} task of {dept or 'anyone'} is {'/'.join(states)}; "
                           "name the task", field="task")
        task = mine[0]
    if task["state"] not in states:
        raise Conflict(f"task {task['id']} is {task['state']}; this step needs {' or '.join(states)}", field="task")
    return task


def new_task(n: int, department: str, role: str, start: str, deadline: str, warn_at: str,
             title: str = "") -> dict[str, Any]:
    """Return a fresh task document for one department."""
    return {"id": f"T{n}", "department": department, "role": role, "state": PENDING, "title": title,
            "dispatched_at": start, "deadline": deadline, "warn_at": warn_at, "warned": False, "escalation": 0,
            "accepted_at": None, "done_at": None, "feedback": None}
