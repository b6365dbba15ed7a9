"""One-matter services (一件事): one citizen matter, several department tasks, one tracking number and status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.cases import model as m
from citybrain.cases.desk import desk_of
from citybrain.clock import iso
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

MATTER_CATEGORY = "E9901"  # matters file under "other"; their template says who does what


class Apply(msgspec.Struct, kw_only=True):
    """A citizen applies for a one-matter service."""

    matter: str
    applicant: str = ""
    description: str = ""
    place: str | None = None
    channel: str = "online"


async def apply(rt: CityBrain, cmd: Apply, ctx: Context) -> Outcome:
    """Open a matter: one case document with one task per template step, dispatched at once."""
    desk = desk_of(rt)
    m.require(ctx, "matter.apply")
    template = desk.catalog.matters.get(cmd.matter)
    if template is None:
        raise NotFound(f"unknown one-matter service {cmd.matter!r}", field="matter")
    if cmd.place is not None and desk.places is not None and cmd.place not in desk.places:
        raise ValidationError(f"place: unknown place {cmd.place}", field="place")
    now = rt.clock.now()
    cal = desk.catalog.calendars["default"] if not cmd.place else desk.catalog.calendars.get(
        desk.area(cmd.place, "City") or "", desk.catalog.calendars["default"])
    frac = desk.catalog.policy["warn_fraction"]
    tasks = [m.new_task(i + 1, t.department, "lead" if i == 0 else "assist", iso(now),
                        iso(cal.add_hours(now, t.hours)), iso(cal.add_hours(now, t.hours * frac)), f"{t.zh} {t.en}")
             for i, t in enumerate(template.tasks)]
    deadline = max(t["deadline"] for t in tasks)
    case: dict[str, Any] = {
        "id": new_id(), "kind": "matter", "matter": template.code, "state": m.DISPATCHED, "open": True,
        "category": MATTER_CATEGORY, "category_kind": "event", "title": f"{template.zh} {template.en}",
        "description": cmd.description, "place": cmd.place, "community": desk.area(cmd.place, "Community"),
        "city": desk.area(cmd.place, "City"), "location": None, "address": "", "channel": cmd.channel,
        "reporter": cmd.applicant, "severity": "", "media_url": "", "attributes": {}, "token": new_id(),
        "sources": [{"channel": cmd.channel, "ref": "", "time": iso(now), "reporter": cmd.applicant}],
        "created_at": iso(now), "updated_at": iso(now), "filed_at": iso(now), "deadline": deadline, "warn_at": None,
        "warned": True, "escalation": 0, "queue": None, "route": None, "routed_by": "template", "tasks": tasks,
        "exceptions": [], "duplicates": [], "merged": [], "merged_into": None, "evaluation": None, "closed_at": None,
        "timeline": [], "departments": [], "overdue": False}
    m.set_state(case, m.DISPATCHED)
    m.step(case, ctx, iso(now), "apply", f"one-matter service {template.code}: {len(tasks)} department tasks")
    return desk.save(case, 0)


def citizen_status(case: dict[str, Any]) -> dict[str, Any]:
    """Return the one status a citizen sees for a matter (and which steps are done)."""
    live = m.live_tasks(case)
    done = sum(1 for t in live if t["state"] == m.DONE)
    if case["state"] == m.CANCELLED:
        status = "cancelled"
    elif case["state"] in m.FINAL:
        status = "completed"
    elif done == 0 and all(t["state"] == m.PENDING for t in live):
        status = "received"
    else:
        status = "in progress"
    return {"tracking_number": case["id"], "matter": case.get("matter"), "title": case["title"], "status": status,
            "steps_done": done, "steps": len(live), "expected": case.get("deadline"),
            "updated_at": case["updated_at"]}
