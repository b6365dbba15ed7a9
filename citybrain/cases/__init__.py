"""Coordinated disposal: cases from every channel, routed to departments, tracked to their time limits.

Component `setup(rt)` loads the catalog files (settings.extra["cases"] may name others: catalog, calendar,
routing, matters), registers the case commands, follows the case events of every process of the node, listens
for alerts and starts the deadline checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citybrain.cases import deadlines, exceptions, lifecycle, matters
from citybrain.cases.alerts import subscribe_alerts
from citybrain.cases.catalog import Catalog, load_catalog
from citybrain.cases.deadlines import check_deadlines
from citybrain.cases.desk import EVENTS, CaseDesk, desk_of
from citybrain.cases.model import COLLECTION, ROLES
from citybrain.model.commands import place_at

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

__all__ = ["COMMANDS", "CaseDesk", "Catalog", "check_deadlines", "desk_of", "load_catalog", "setup"]

COMMANDS: list[tuple[str, type, Any, str]] = [
    ("case.intake", lifecycle.Intake, lifecycle.intake, "report a problem (any channel): opens or joins a case"),
    ("case.file", lifecycle.CaseRef, lifecycle.file, "file a reported case (supervision)"),
    ("case.dispatch", lifecycle.Dispatch, lifecycle.dispatch, "dispatch a filed case to departments (command)"),
    ("case.accept", lifecycle.TaskStep, lifecycle.accept, "a department accepts its task"),
    ("case.feedback", lifecycle.TaskStep, lifecycle.feedback, "a department reports its task done"),
    ("case.verify", lifecycle.Verify, lifecycle.verify, "verify the result on site (supervision)"),
    ("case.close", lifecycle.CaseRef, lifecycle.close, "close a verified case"),
    ("case.evaluate", lifecycle.Evaluate, lifecycle.evaluate, "evaluate a closed case"),
    ("case.merge", lifecycle.Merge, lifecycle.merge, "merge a duplicate into the case it repeats"),
    ("case.request_exception", exceptions.RequestException, exceptions.request_exception,
     "ask for a send-back, extension, suspension or cancellation"),
    ("case.approve_exception", exceptions.ApproveException, exceptions.approve_exception,
     "approve or reject an exception request"),
    ("case.resume", exceptions.Resume, exceptions.resume, "take a case out of the problem ledger"),
    ("case.warn", deadlines.Clocked, deadlines.warn, "warn that a time limit is near (deadline checker)"),
    ("case.escalate", deadlines.Clocked, deadlines.escalate, "escalate an overdue case or task (deadline checker)"),
    ("matter.apply", matters.Apply, matters.apply, "apply for a one-matter service (一件事)"),
]


def catalog_from(rt: CityBrain) -> Catalog:
    """Load the catalog files named in settings.extra['cases'] (or the packaged ones)."""
    files: dict[str, Any] = dict(rt.settings.extra.get("cases", {}))
    return load_catalog(files.get("catalog"), files.get("calendar"), files.get("routing"), files.get("matters"))


async def _case_places(rt: CityBrain, ids: list[str]) -> list[str | None]:
    """Return where the stored cases among `ids` lie (their cell, else their community); unknown ids: nothing."""
    out: list[str | None] = []
    for case_id in ids:
        doc = await rt.store.get_doc(COLLECTION, case_id)
        if doc is not None:
            out.append(doc.data.get("place") or doc.data.get("community"))
    return out


async def _locate_case(rt: CityBrain, cmd: Any) -> list[str | None]:
    """A step on a case touches the case (a merge: both cases)."""
    return await _case_places(rt, [cmd.id, *([cmd.into] if isinstance(getattr(cmd, "into", None), str) else [])])


async def _locate_report(rt: CityBrain, cmd: Any) -> list[str | None]:
    """A report (or a matter) touches where it is made: its place, else the cell its point lies in."""
    # a confined reporter says where (None is refused): a case nobody can place would be outside every area
    return [place_at(rt, cmd.place, getattr(cmd, "lon", None), getattr(cmd, "lat", None))]


LOCATORS = {"case.intake": _locate_report, "matter.apply": _locate_report}


async def setup(rt: CityBrain) -> None:
    """Register the case commands, follow case events, load open cases, listen for alerts, start the checker."""
    desk = CaseDesk(rt, catalog_from(rt))
    rt.ports.cases = desk
    for name, schema, handler, summary in COMMANDS:
        rt.commands.register(name, schema, handler, summary, ROLES.get(name, ()),
                             place=LOCATORS.get(name, _locate_case))
    for subject in EVENTS:  # every process: no durable, no queue (each keeps its own cache and index current)
        await rt.bus.subscribe(subject, desk.on_event)
    await desk.warm()  # after subscribing, so that nothing written meanwhile is missed
    await subscribe_alerts(rt)
    if rt.settings.extra.get("cases", {}).get("checker", True):
        rt.cluster.singleton("cases-deadlines", lambda: deadlines.deadline_loop(rt))
