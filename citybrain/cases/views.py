"""Read views over case documents: filtered lists, clocks left, routing share, the problem ledger."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from citybrain.cases import model as m
from citybrain.cases.desk import desk_of
from citybrain.clock import parse_time

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


async def all_cases(rt: CityBrain, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return every case document matching the stored-field filter."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        batch = await rt.store.list_docs(m.COLLECTION, where=where or None, limit=5000, offset=offset)
        out += [d.data for d in batch]
        if len(batch) < 5000:
            return out
        offset += 5000


async def find(rt: CityBrain, state: str | None = None, department: str | None = None, overdue: bool | None = None,
               category: str | None = None, queue: str | None = None, channel: str | None = None,
               kind: str | None = None, place: str | None = None) -> list[dict[str, Any]]:
    """Return cases matching every given filter (place: in it or below it), newest first."""
    where: dict[str, Any] = {}
    for key, value in (("state", state), ("overdue", overdue), ("category", category), ("queue", queue),
                       ("channel", channel), ("kind", kind)):
        if value is not None:
            where[key] = value
    found = await all_cases(rt, where)
    if department is not None:
        found = [c for c in found if department in c.get("departments", [])]
    if place is not None:
        places = rt.ports.places
        found = [c for c in found if isinstance(c.get("place"), str) and c["place"] in places
                 and places.within(c["place"], place)]
    found.sort(key=lambda c: c["created_at"], reverse=True)
    return found


def with_clocks(rt: CityBrain, case: dict[str, Any]) -> dict[str, Any]:
    """Return the case plus the working hours left on the case clock and on each task clock."""
    desk = desk_of(rt)
    out = dict(case)
    try:
        cal = desk.catalog.calendar(desk.category_of(case), case.get("city"))
    except Exception:
        return out
    now = rt.clock.now()
    running = case["state"] in m.RUNNING

    def left(deadline: str | None) -> float | None:
        return round(cal.hours_between(now, parse_time(deadline)), 2) if deadline and running else None

    out["clock"] = {"deadline": case.get("deadline"), "hours_left": left(case.get("deadline")),
                    "calendar": cal.name}
    out["tasks"] = [dict(t, hours_left=left(t["deadline"]) if t["state"] in (m.PENDING, m.ACCEPTED) else None)
                    for t in case["tasks"]]
    return out


async def stats(rt: CityBrain) -> dict[str, Any]:
    """Return counts by state and the share of filed cases that reached a department without the command centre."""
    cases = await all_cases(rt)
    states = Counter(c["state"] for c in cases)
    filed = [c for c in cases if c.get("filed_at") and c.get("kind") == "case"]
    by_rule = sum(1 for c in filed if c.get("routed_by") == "rule")
    centre = sum(1 for c in filed if c.get("routed_by") == "command-centre" or c.get("queue"))
    return {"cases": len(cases), "by_state": dict(states), "filed": len(filed), "routed_by_rule": by_rule,
            "via_command_centre": centre, "routing_share": round(by_rule / len(filed), 4) if filed else None,
            "overdue": sum(1 for c in cases if c.get("overdue")),
            "ledger": states.get(m.SUSPENDED, 0)}


async def kpis(rt: CityBrain, within: str | None = None) -> dict[str, Any]:
    """Dashboard tiles: open cases, on-time closure rate, mean minutes from filing to first acceptance."""
    cases = await find(rt, kind="case", place=within)
    open_cases = [c for c in cases if c["state"] not in m.FINAL]
    closed = [c for c in cases if c["state"] in (m.CLOSED, m.EVALUATED)]
    desk = desk_of(rt)
    on_time = sum(1 for c in closed if desk.on_time(c))
    waits = []
    for c in cases:
        accepted = [t["accepted_at"] for t in c.get("tasks", []) if t.get("accepted_at")]
        if c.get("filed_at") and accepted:
            waits.append((parse_time(min(accepted)) - parse_time(c["filed_at"])).total_seconds() / 60)
    return {"open": len(open_cases), "closed": len(closed), "overdue": sum(1 for c in open_cases if c.get("overdue")),
            "on_time_rate": round(on_time / len(closed), 4) if closed else None,
            "mean_response_minutes": round(sum(waits) / len(waits), 1) if waits else None}
