"""A hand-built fixture: a small city with sensors, observations, cases, alerts and events written to the store.

City c → districts d1, d2 → subdistricts s1, s2 → communities m1 (g1, g2), m2 (g3, g4) and m3 (no cells).
Populations g1..g4: 1000, 2000, 3000, 4000. Observation points: a1 in g1 (one value every hour of DAY),
a2 in g3 (12 hourly values the day before only), w1 in g2 (never reports). See test_fixture.py for the
expected value of every indicator, worked out by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.context import Context
from citybrain.events import Event
from citybrain.model.entity import ObservationRow
from citybrain.runtime import CityBrain
from citybrain.store import AppendEvent, PutDoc, WriteObservations

DAY, NEXT, BEFORE = "2026-03-02", "2026-03-03", "2026-03-01"
CITY, D1, D2, M3 = "urn:ngsi-ld:City:c", "urn:ngsi-ld:District:d1", "urn:ngsi-ld:District:d2", "urn:ngsi-ld:Community:m3"
COMPONENTS = ["citybrain.model.commands", "citybrain.cases", "citybrain.trust", "citybrain.indicators"]


def g(n: int) -> str:
    """Return the URN of grid cell n."""
    return f"urn:ngsi-ld:Grid:g{n}"


def t(day: str, hh: int, mm: int = 0) -> str:
    """Return a canonical UTC timestamp on `day`."""
    return f"{day}T{hh:02d}:{mm:02d}:00.000Z"


def task(dept: str, dispatched: str, accepted: str | None, done: str | None, deadline: str) -> dict[str, Any]:
    """Return a case task document."""
    return {"id": "T", "department": dept, "state": "done" if done else "accepted", "dispatched_at": dispatched,
            "accepted_at": accepted, "done_at": done, "deadline": deadline}


def case(cid: str, channel: str, category: str, place: str, created: str, state: str, tasks: list[dict[str, Any]],
         closed: str | None = None, **extra: Any) -> dict[str, Any]:
    """Return a case document as the cases component stores it."""
    return {"id": cid, "kind": "case", "channel": channel, "category": category, "place": place, "created_at": created,
            "state": state, "tasks": tasks, "closed_at": closed, "timeline": extra.pop("timeline", []),
            "sources": extra.pop("sources", []), "duplicates": [], "merged_into": None, **extra}


CASES = [
    case("K1", "open311", "E0401", g(1), t(DAY, 1), "evaluated",
         [task("urban", t(DAY, 1, 30), t(DAY, 2), t(DAY, 5), t(DAY, 10))], t(DAY, 6),
         timeline=[{"step": "evaluate", "time": t(DAY, 7), "score": 4}]),
    case("K2", "alert", "E0505", g(2), t(DAY, 2), "closed",
         [task("drainage", t(DAY, 2), t(DAY, 2, 30), t(DAY, 12), t(DAY, 10)),
          task("emergency", t(DAY, 2), t(DAY, 3), t(DAY, 8), t(DAY, 10))], t(DAY, 13),
         sources=[{"channel": "alert", "ref": "A1"}]),
    case("K3", "open311", "E0401", g(3), t(DAY, 4), "merged", [], merged_into="K1"),
    case("K4", "grid", "C0110", g(4), t(BEFORE, 10), "closed",
         [task("urban", t(BEFORE, 11), t(DAY, 9), t(DAY, 9, 30), t(DAY, 12))], t(DAY, 10),
         timeline=[{"step": "evaluate", "time": t(DAY, 11), "score": 2}]),
    case("K5", "open311", "E0101", g(1), t(DAY, 20), "filed", []),
]


def alert(aid: str, issued: str, place: str, community: str, *steps: tuple[str, str]) -> dict[str, Any]:
    """Return an alert document with its status history."""
    history = [{"status": "raised", "actor": "system", "time": issued}]
    history += [{"status": s, "actor": a, "time": issued} for s, a in steps]
    return {"id": aid, "type": "Alert", "category": "flood.rainstorm", "group": community, "dateIssued": issued, "place": place,
            "community": community, "status": history[-1]["status"], "history": history, "case": None}


ALERTS = [
    alert("A1", t(DAY, 1, 50), g(2), "urn:ngsi-ld:Community:m1"),
    alert("A2", t(DAY, 5), g(3), "urn:ngsi-ld:Community:m2", ("acknowledged", "operator:li")),
    alert("A3", t(DAY, 6), g(4), "urn:ngsi-ld:Community:m2", ("resolved", "system")),
    alert("A4", t(BEFORE, 6), g(4), "urn:ngsi-ld:Community:m2"),
]


async def build(rt: CityBrain) -> None:
    """Write the fixture's places, sensors, observations, documents and events."""
    async def put(pid: str, ptype: str, parent: str | None, **attrs: Any) -> None:
        await rt.execute("entity.write", {"entity": {"id": pid, "type": ptype, "place": parent, "attrs": attrs}})

    await put(CITY, "City", None)
    for d in (1, 2):
        await put(f"urn:ngsi-ld:District:d{d}", "District", CITY)
        await put(f"urn:ngsi-ld:Subdistrict:s{d}", "Subdistrict", f"urn:ngsi-ld:District:d{d}")
    for m, s in ((1, 1), (2, 2), (3, 2)):
        await put(f"urn:ngsi-ld:Community:m{m}", "Community", f"urn:ngsi-ld:Subdistrict:s{s}")
    for n in (1, 2, 3, 4):
        await put(g(n), "Grid", f"urn:ngsi-ld:Community:m{1 + (n - 1) // 2}", population=1000 * n)
    await put("urn:ngsi-ld:AirQualityObserved:a1", "AirQualityObserved", g(1))
    await put("urn:ngsi-ld:AirQualityObserved:a2", "AirQualityObserved", g(3))
    await put("urn:ngsi-ld:WeatherObserved:w1", "WeatherObserved", g(2))
    rows = [ObservationRow("urn:ngsi-ld:AirQualityObserved:a1", "pm25", t(DAY, h), 30.0 + h) for h in range(24)]
    rows += [ObservationRow("urn:ngsi-ld:AirQualityObserved:a2", "pm25", t(BEFORE, h), 40.0) for h in range(12)]
    ops: list[Any] = [WriteObservations(rows)]
    ops += [PutDoc("cases", c["id"], c) for c in CASES] + [PutDoc("alerts", a["id"], a) for a in ALERTS]
    ctx = Context(actor="test")
    for kind, when in (("request", t(DAY, 3)), ("request", t(DAY, 4)), ("approve", t(DAY, 5)),
                       ("request", t(BEFORE, 5))):
        ops.append(AppendEvent(Event(type=f"command.grant.{kind}", time=when, context=Context(actor="test"),
                                     data={})))
    await rt.store.apply(ops)
    del ctx


def runtime(tmp_path: Path, extra: dict[str, Any] | None = None) -> CityBrain:
    """Return the fixture runtime (not started) on a fake clock at the end of DAY."""
    settings = Settings(store=str(tmp_path / "ind.db"), bus="memory",
                        extra={"cases": {"checker": False}, **(extra or {})})
    return CityBrain(settings, clock=FakeClock(t(NEXT, 0)), components=COMPONENTS)
