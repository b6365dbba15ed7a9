"""The main line of a case: intake → filed → dispatched → handling → feedback → verified → closed → evaluated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.cases import model as m
from citybrain.cases.desk import desk_of
from citybrain.cases.similar import OpenCase, terms
from citybrain.clock import iso, parse_time
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.errors import Conflict, ValidationError
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Intake(msgspec.Struct, kw_only=True):
    """A report from any channel (alert, open311, grid, community, hotline, supervisor)."""

    channel: str = "grid"
    category: str | None = None
    alert_category: str | None = None  # mapped onto a case category by the catalog
    title: str = ""
    description: str = msgspec.field(default="")
    place: str | None = None
    lon: float | None = None
    lat: float | None = None
    address: str = ""
    reporter: str = ""
    severity: str = ""
    source_id: str = ""  # alert id, hotline ticket …
    media_url: str = ""
    attributes: dict[str, Any] = {}


class CaseRef(msgspec.Struct, kw_only=True):
    """Names a case, with an optional note for the timeline."""

    id: str
    note: str = ""


class Dispatch(CaseRef, kw_only=True):
    """Dispatch to the routed departments, or (command centre) to named ones."""

    lead: str | None = None
    assist: list[str] = []


class TaskStep(CaseRef, kw_only=True):
    """A department's step on its task (task id optional when it has only one)."""

    task: str | None = None


class Verify(CaseRef, kw_only=True):
    """The supervisor's on-site check."""

    passed: bool = True


class Evaluate(CaseRef, kw_only=True):
    """The overall evaluation (1–5)."""

    score: int = 5


class Merge(CaseRef, kw_only=True):
    """Merge case `id` into case `into` as a duplicate."""

    into: str


async def intake(rt: CityBrain, cmd: Intake, ctx: Context) -> Outcome:
    """Open a case (or, for an alert, join the open case of its category in the same community)."""
    desk = desk_of(rt)
    m.require(ctx, "case.intake")
    if len(cmd.description) > 4000:
        raise ValidationError("description: longer than 4000 characters", field="description")
    code = cmd.category or (desk.catalog.for_alert(cmd.alert_category) if cmd.alert_category else None)
    if code is None:
        raise ValidationError("category: give a case category (or alert_category)", field="category")
    cat = desk.catalog.category(code)
    place = cmd.place
    if place is not None and desk.places is not None and place not in desk.places:
        raise ValidationError(f"place: unknown place {place}", field="place")
    if place is None and cmd.lon is not None and cmd.lat is not None and desk.places is not None:
        place = desk.places.locate(cmd.lon, cmd.lat)
    now = rt.now()
    community = desk.area(place, "Community")
    source = {"channel": cmd.channel, "ref": cmd.source_id, "time": now, "reporter": cmd.reporter}
    if cmd.channel == "alert":
        open_case = desk.index.same_area(code, community)
        while open_case is not None:
            case, version = await desk.load(open_case.id)
            if case["state"] not in m.FINAL:
                case["sources"].append(source)
                m.step(case, ctx, now, "join", f"alert {cmd.source_id} joined: {cmd.description[:200]}")
                return desk.save(case, version, result={"id": case["id"], "joined": True, "state": case["state"]})
            # closed by another process a moment ago (its event is on the way): never join a closed case
            desk.index.remove(open_case.id, code)
            open_case = desk.index.same_area(code, community)
    case: dict[str, Any] = {  # type: ignore[no-redef]
        "id": new_id(), "kind": "case", "state": m.INTAKE, "open": True, "category": code, "category_kind": cat.kind,
        "title": cmd.title or cat.en, "description": cmd.description, "place": place, "community": community,
        "city": desk.area(place, "City"), "location": {"lon": cmd.lon, "lat": cmd.lat} if cmd.lon is not None
        and cmd.lat is not None else None, "address": cmd.address, "channel": cmd.channel, "reporter": cmd.reporter,
        "severity": cmd.severity, "media_url": cmd.media_url, "attributes": cmd.attributes, "sources": [source],
        "token": new_id(), "created_at": now, "updated_at": now, "filed_at": None, "deadline": None,
        "warn_at": None, "warned": False, "escalation": 0, "queue": None, "route": None, "routed_by": None,
        "tasks": [], "exceptions": [], "duplicates": [], "merged": [], "merged_into": None, "evaluation": None,
        "closed_at": None, "timeline": [], "departments": [], "overdue": False}
    bag = terms(f"{case['title']} {cmd.description}")
    loc = case["location"] or {}
    probe = OpenCase(case["id"], code, community, loc.get("lon"), loc.get("lat"), parse_time(now).timestamp(), bag)
    case["duplicates"] = desk.index.propose(probe)
    desk.index.text.learn(bag)
    note = f"via {cmd.channel}" + (f"; possible duplicate of {case['duplicates'][0]['id']}" if case["duplicates"] else "")
    m.step(case, ctx, now, "intake", note)
    return desk.save(case, 0)


async def file(rt: CityBrain, cmd: CaseRef, ctx: Context) -> Outcome:
    """File (立案) a reported case: start its case clock and propose its route."""
    desk = desk_of(rt)
    m.require(ctx, "case.file")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.INTAKE)
    cat = desk.category_of(case)
    now = rt.clock.now()
    cal = desk.catalog.calendar(cat, case.get("city"))
    hours = desk.catalog.policy["dispatch_hours"] + cat.limit_hours
    case["filed_at"] = iso(now)
    case["deadline"] = iso(cal.add_hours(now, hours))
    case["warn_at"] = iso(cal.add_hours(now, hours * desk.catalog.policy["warn_fraction"]))
    route = desk.catalog.router.route(case["category"], case.get("place"), desk.places)
    case["route"] = {"lead": route.lead, "assist": list(route.assist), "rule_line": route.rule_line} if route else None
    case["queue"] = None if route else desk.catalog.router.command_centre
    m.set_state(case, m.FILED)
    m.step(case, ctx, iso(now), "file", cmd.note or ("" if route else "no routing rule: command centre queue"))
    return desk.save(case, version)


async def dispatch(rt: CityBrain, cmd: Dispatch, ctx: Context) -> Outcome:
    """Dispatch (派遣): one task per department, each with its own working-time clock."""
    desk = desk_of(rt)
    role = m.require(ctx, "case.dispatch")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.FILED)
    router = desk.catalog.router
    lead, assist = cmd.lead, list(cmd.assist)
    if lead is None:
        if not case.get("route"):
            raise Conflict(f"case {cmd.id} has no route; the command centre must name the departments", field="lead")
        lead, assist = case["route"]["lead"], list(case["route"]["assist"])
    for i, d in enumerate([lead, *assist]):
        if d not in router.departments:
            raise ValidationError(f"unknown department {d!r}", field="lead" if i == 0 else f"assist[{i - 1}]")
    cat = desk.category_of(case)
    now = rt.clock.now()
    cal = desk.catalog.calendar(cat, case.get("city"))
    deadline = iso(cal.add_hours(now, cat.limit_hours))
    warn = iso(cal.add_hours(now, cat.limit_hours * desk.catalog.policy["warn_fraction"]))
    n = len(case["tasks"])
    for i, d in enumerate(dict.fromkeys([lead, *assist])):
        case["tasks"].append(m.new_task(n + i + 1, d, "lead" if i == 0 else "assist", iso(now), deadline, warn))
    by = "rule" if role == "system" else "command-centre"
    case["routed_by"] = case.get("routed_by") or by
    case["queue"] = None
    m.set_state(case, m.DISPATCHED)
    m.step(case, ctx, iso(now), "dispatch", cmd.note or f"lead {lead}" + (f", assist {', '.join(assist)}" if assist else ""))
    return desk.save(case, version)


async def accept(rt: CityBrain, cmd: TaskStep, ctx: Context) -> Outcome:
    """A department accepts its task (任务处理 begins)."""
    desk = desk_of(rt)
    m.require(ctx, "case.accept")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.DISPATCHED, m.HANDLING)
    task = m.task_for(case, ctx.actor, cmd.task, (m.PENDING,))
    task["state"], task["accepted_at"] = m.ACCEPTED, rt.now()
    m.set_state(case, m.HANDLING)
    m.step(case, ctx, rt.now(), "accept", cmd.note, task=task["id"])
    return desk.save(case, version)


async def feedback(rt: CityBrain, cmd: TaskStep, ctx: Context) -> Outcome:
    """A department reports its task done (处理反馈); when all are done the case waits for verification."""
    desk = desk_of(rt)
    m.require(ctx, "case.feedback")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.DISPATCHED, m.HANDLING)
    task = m.task_for(case, ctx.actor, cmd.task, (m.PENDING, m.ACCEPTED))
    now = rt.now()
    task["state"], task["done_at"], task["feedback"] = m.DONE, now, cmd.note
    task["accepted_at"] = task["accepted_at"] or now
    m.set_state(case, m.HANDLING)
    m.step(case, ctx, now, "feedback", cmd.note, task=task["id"])
    if all(t["state"] == m.DONE for t in m.live_tasks(case)):
        if case["kind"] == "matter":  # one-matter services close when every department is done
            case["closed_at"] = now
            m.set_state(case, m.CLOSED)
            m.step(case, ctx.child("system:matter"), now, "close", "every department task done")
        else:
            m.set_state(case, m.FEEDBACK)
    return desk.save(case, version)


async def verify(rt: CityBrain, cmd: Verify, ctx: Context) -> Outcome:
    """The supervisor checks on site (核查): pass → verified; fail → back to the departments."""
    desk = desk_of(rt)
    m.require(ctx, "case.verify")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.FEEDBACK)
    if cmd.passed:
        m.set_state(case, m.VERIFIED)
    else:
        for t in m.live_tasks(case):
            t["state"], t["done_at"] = m.ACCEPTED, None
        m.set_state(case, m.HANDLING)
    m.step(case, ctx, rt.now(), "verify" if cmd.passed else "verify-failed", cmd.note)
    return desk.save(case, version)


async def close(rt: CityBrain, cmd: CaseRef, ctx: Context) -> Outcome:
    """Close (结案) a verified case."""
    desk = desk_of(rt)
    m.require(ctx, "case.close")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.VERIFIED)
    case["closed_at"] = rt.now()
    m.set_state(case, m.CLOSED)
    m.step(case, ctx, rt.now(), "close", cmd.note)
    return desk.save(case, version)


async def evaluate(rt: CityBrain, cmd: Evaluate, ctx: Context) -> Outcome:
    """Evaluate (综合评价) a closed case: a score and whether every task met its time limit."""
    desk = desk_of(rt)
    m.require(ctx, "case.evaluate")
    if not 1 <= cmd.score <= 5:
        raise ValidationError("score: expected 1 to 5", field="score")
    case, version = await desk.load(cmd.id)
    m.expect(case, m.CLOSED)
    case["evaluation"] = {"score": cmd.score, "on_time": desk.on_time(case), "by": ctx.actor, "note": cmd.note}
    m.set_state(case, m.EVALUATED)
    m.step(case, ctx, rt.now(), "evaluate", cmd.note, score=cmd.score)
    return desk.save(case, version)


async def merge(rt: CityBrain, cmd: Merge, ctx: Context) -> Outcome:
    """Merge a duplicate report into the case it repeats; its sources move over."""
    desk = desk_of(rt)
    m.require(ctx, "case.merge")
    if cmd.id == cmd.into:
        raise ValidationError("into: a case cannot be merged into itself", field="into")
    dup, v1 = await desk.load(cmd.id)
    target, v2 = await desk.load(cmd.into)
    if dup["state"] in m.FINAL or target["state"] in m.FINAL:
        raise Conflict("both cases must be open to merge", field="state")
    for t in dup["tasks"]:
        if t["state"] in (m.PENDING, m.ACCEPTED):
            t["state"] = m.WITHDRAWN
    dup["merged_into"] = target["id"]
    m.set_state(dup, m.MERGED)
    m.step(dup, ctx, rt.now(), "merge", cmd.note or f"duplicate of {target['id']}", into=target["id"])
    target["merged"].append(dup["id"])
    target["sources"].extend(dup["sources"])
    m.step(target, ctx, rt.now(), "absorb", f"merged duplicate {dup['id']}", merged=dup["id"])
    return desk.save(target, v2, result={"id": dup["id"], "state": m.MERGED, "into": target["id"]},
                     extra=[PutDoc(m.COLLECTION, dup["id"], dup, expect_version=v1)])
