"""The named data functions formulas may call: counts, ratios' parts, means and percentiles over own records.

Every function reads the period and area of the evaluation (see Scope) and returns a number, or raises
NoData when there is nothing to compute from (a mean of no cases, a count from a component that is absent).
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from citybrain.clock import parse_time
from citybrain.indicators.records import NoData, Records, Scope
from citybrain.ports import Ports

Impl = Callable[..., Awaitable[float]]
AFTER = frozenset({"dispatched", "handling", "feedback", "verified", "closed", "evaluated"})


@dataclass(frozen=True)
class Fn:
    """A data function: its name, argument names and one-line meaning."""

    name: str
    params: tuple[str, ...]
    doc: str
    impl: Impl


FUNCTIONS: dict[str, Fn] = {}


def fn(*params: str) -> Callable[[Impl], Impl]:
    """Register a data function under its Python name with the given argument names."""
    def wrap(impl: Impl) -> Impl:
        FUNCTIONS[impl.__name__.rstrip("_")] = Fn(impl.__name__.rstrip("_"), params, (impl.__doc__ or "").strip(),
                                                   impl)
        return impl
    return wrap


def _match(case: dict[str, Any], channel: str, category: str) -> bool:
    return (not channel or case.get("channel") == channel) and (not category or str(case.get("category", "")
                                                                                     ).startswith(category))


def _hours(a: str, b: str) -> float:
    return (parse_time(b) - parse_time(a)).total_seconds() / 3600


def _stat(values: list[float], stat: str, what: str) -> float:
    if not values:
        raise NoData(f"no {what} in this period and area")
    if stat == "median":
        return float(statistics.median(values))
    if stat == "p90":
        ordered = sorted(values)
        return float(ordered[max(0, -(-9 * len(ordered) // 10) - 1)])  # nearest-rank 90th percentile
    return float(statistics.fmean(values))


def _cases(rec: Records, scope: Scope, channel: str, category: str) -> list[dict[str, Any]]:
    return [c for c in rec.cases if scope.has(c.get("place")) and _match(c, channel, category)]


@fn("channel", "category", "state")
async def cases(rec: Records, scope: Scope, channel: str = "", category: str = "", state: str = "") -> float:
    """Cases opened in the period (created_at), optionally of a channel, a category prefix and a current state."""
    return float(sum(1 for c in _cases(rec, scope, channel, category)
                     if scope.during(c.get("created_at")) and (not state or c.get("state") == state)))


@fn("channel", "category", "on_time")
async def closed(rec: Records, scope: Scope, channel: str = "", category: str = "", on_time: bool = False) -> float:
    """Cases closed in the period (closed_at); on_time=True: only those whose every task met its deadline."""
    return float(sum(1 for c in _cases(rec, scope, channel, category) if scope.during(c.get("closed_at"))
                     and (not on_time or _on_time(c))))


def _on_time(case: dict[str, Any]) -> bool:
    live = [t for t in case.get("tasks", []) if t.get("state") != "withdrawn"]
    return all(t.get("done_at") and t["done_at"] <= t["deadline"] for t in live)


@fn("channel", "category")
async def repeats(rec: Records, scope: Scope, channel: str = "", category: str = "") -> float:
    """Cases opened in the period that repeat another: merged as a duplicate, or proposed as one at intake."""
    return float(sum(1 for c in _cases(rec, scope, channel, category) if scope.during(c.get("created_at"))
                     and (c.get("state") == "merged" or c.get("merged_into") or c.get("duplicates"))))


def step_time(case: dict[str, Any], until: str) -> str | None:
    """Return when a case first reached a step: dispatch (a task created), accept (a task accepted), close."""
    if until == "close":
        return case.get("closed_at")
    key = {"dispatch": "dispatched_at", "accept": "accepted_at"}[until]
    times = [t[key] for t in case.get("tasks", []) if t.get(key)]
    return min(times) if times else None


@fn("until", "stat", "channel", "category")
async def case_hours(rec: Records, scope: Scope, until: str = "close", stat: str = "mean", channel: str = "",
                     category: str = "") -> float:
    """Hours from a case's opening to its first dispatch/accept/close, over cases reaching it in the period."""
    if until not in ("dispatch", "accept", "close") or stat not in ("mean", "median", "p90"):
        raise NoData(f"case_hours: until must be dispatch/accept/close and stat mean/median/p90 ({until}, {stat})")
    values = [_hours(c["created_at"], t) for c in _cases(rec, scope, channel, category)
              if (t := step_time(c, until)) and scope.during(t)]
    return _stat(values, stat, f"cases reaching {until}")


@fn("channel")
async def satisfaction(rec: Records, scope: Scope, channel: str = "") -> float:
    """Mean score (1-5) of the evaluations and feedback ratings recorded on case timelines in the period."""
    scores = [float(e["score"]) for c in _cases(rec, scope, channel, "") for e in c.get("timeline", [])
              if isinstance(e.get("score"), int | float) and scope.during(e.get("time"))]
    return _stat(scores, "mean", "rated cases")


def _alerts(rec: Records, scope: Scope, category: str) -> list[dict[str, Any]]:
    return [a for a in rec.alerts if scope.has(a.get("place") or a.get("community")) and scope.during(
        a.get("dateIssued")) and str(a.get("category", "")).startswith(category)]


def confirmed(rec: Records, alert: dict[str, Any]) -> bool:
    """Tell whether a person confirmed an alert: acknowledged/escalated it, or a department accepted its case."""
    if any(h.get("status") in ("acknowledged", "escalated") and not str(h.get("actor", "system")).startswith("system")
           for h in alert.get("history", [])):
        return True
    case = rec.case_of_alert.get(str(alert.get("id")))
    return bool(case and case.get("state") != "cancelled" and step_time(case, "accept"))


@fn("category", "confirmed")
async def alerts(rec: Records, scope: Scope, category: str = "", confirmed_: bool = False, **kw: Any) -> float:
    """Alerts raised in the period (dateIssued); confirmed=True: only those a person or a department confirmed."""
    want = bool(kw.get("confirmed", confirmed_))
    return float(sum(1 for a in _alerts(rec, scope, category) if not want or confirmed(rec, a)))


def _cells(rec: Records, scope: Scope) -> list[str]:
    places = rec.places
    if places is None:
        raise NoData("this node has no place model")
    return [c.id for c in places.of_type("Grid") if scope.has(c.id)]


def _live_cells(rec: Records, scope: Scope) -> set[str]:
    return {str(place) for e, place in rec.sensors.items() if place and rec.count_obs(e, scope.start, scope.end)}


@fn("sensed")
async def cells(rec: Records, scope: Scope, sensed: bool = False) -> float:
    """Grid cells in the area; sensed=True: those with an observation point that stored a value in the period."""
    inside = _cells(rec, scope)
    live = _live_cells(rec, scope) if sensed else None
    return float(sum(1 for c in inside if live is None or c in live))


@fn("covered")
async def population(rec: Records, scope: Scope, covered: bool = False) -> float:
    """Residents of the area's grid cells; covered=True: of cells whose community has live sensing in the period."""
    places = rec.places
    inside = set(_cells(rec, scope))
    pops = {c: p for c in inside if places is not None and isinstance(
        p := places.places[c].value("population"), int | float)}
    if not pops:
        raise NoData("no grid cell of the area has a population count")
    if not covered:
        return float(sum(pops.values()))
    live = _live_cells(rec, scope)
    total = 0.0
    for cells_ in rec.cells_by_community().values():
        if any(c in live for c in cells_):
            total += sum(pops.get(c, 0) for c in cells_)
    return total


@fn("fresh_minutes")
async def sensors(rec: Records, scope: Scope, fresh_minutes: float = 0) -> float:
    """Observation points in the area; fresh_minutes=N: those whose latest value at the period end is <= N min old."""
    found = rec.sensors_in(scope)
    if not fresh_minutes:
        return float(len(found))
    end = parse_time(scope.end)
    return float(sum(1 for e in found if (t := rec.last_obs(e, scope.end)) is not None
                     and (end - parse_time(t)).total_seconds() <= fresh_minutes * 60))


@fn()
async def uptime(rec: Records, scope: Scope) -> float:
    """Mean share (0-1) of the period's hours in which each observation point of the area stored a value."""
    found = rec.sensors_in(scope)
    hours = max(1, round(scope.hours))
    if not found:
        raise NoData("no observation points in the area")
    return statistics.fmean(min(1.0, rec.hours_with_obs(e, scope.start, scope.end) / hours) for e in found)


@fn()
async def observations(rec: Records, scope: Scope) -> float:
    """Observed values stored in the period by the area's observation points."""
    return float(sum(rec.count_obs(e, scope.start, scope.end) for e in rec.sensors_in(scope)))


def _desk(rec: Records) -> Any:
    desk = rec.rt.ports.find(Ports.cases)
    if desk is None:
        raise NoData("the cases component is not running")
    return desk


@fn("active")
async def departments(rec: Records, scope: Scope, active: bool = False) -> float:
    """Departments in the routing file; active=True: those that accepted a case task in the area in the period."""
    known = set(_desk(rec).catalog.router.departments)
    if not active:
        return float(len(known))
    busy = {t["department"] for c in _cases(rec, scope, "", "") for t in c.get("tasks", [])
            if scope.during(t.get("accepted_at"))}
    return float(len(busy & known))


@fn("routed", "online")
async def categories(rec: Records, scope: Scope, routed: bool = False, online: bool = False) -> float:
    """Case categories in the catalog; routed=True: with a routing rule; online=True: offered through Open311."""
    cat = _desk(rec).catalog
    return float(sum(1 for code, c in cat.categories.items() if (not routed or cat.router.route(code, None, None))
                     and (not online or c.open311)))


@fn()
async def datasets(rec: Records, scope: Scope) -> float:
    """Datasets in the data catalog (city-wide)."""
    catalog = rec.rt.ports.find(Ports.catalog)
    if catalog is None:
        raise NoData("the trust component (data catalog) is not running")
    return float(len(await catalog.list_datasets()))


@fn()
async def scenarios(rec: Records, scope: Scope) -> float:
    """Distinct alert categories (scenarios) the rules in force can raise (city-wide)."""
    judge = rec.rt.ports.find(Ports.rules)
    if judge is None:
        raise NoData("the rules component is not running")
    return float(len({r.category for r in judge.engine.rules}))


@fn()
async def plans(rec: Records, scope: Scope) -> float:
    """Emergency plans (预案) loaded by the plans component (city-wide)."""
    desk = rec.rt.ports.find(Ports.plans)
    if desk is None:
        raise NoData("the plans component is not running")
    return float(len(desk.plans))


@fn("collection")
async def docs(rec: Records, scope: Scope, collection: str = "") -> float:
    """Documents in a store collection (plans, drills …), city-wide."""
    return float(len(await rec.docs_of(collection)))


@fn("type")
async def events(rec: Records, scope: Scope, type_: str = "", **kw: Any) -> float:
    """Events in the period whose type starts with `type` (e.g. command.grant.approve), city-wide."""
    prefix = str(kw.get("type", type_))
    return float(sum(1 for e in await rec.events_of(prefix) if scope.during(e.time)))


@fn()
async def days(rec: Records, scope: Scope) -> float:
    """Length of the period in days."""
    return scope.hours / 24
