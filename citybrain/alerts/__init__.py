"""Alerts: raised from rule and detector signals; acknowledged, escalated and resolved by commands.

Commands: alert.ack, alert.escalate, alert.resolve, alert.suppress (maintenance window for an entity or
place), alert.link (the case an alert opened). Events: alert.raised, alert.escalated, alert.resolved
(subjects cb.event.alert.*), plus the command events.

The commands run on any process of the node: they read the alert's stored document (waiting a moment for one
raised on another process), write it with the version they read, and carry the change in their event, which
every process's alert book applies (see book.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.alerts.book import COLLECTION, OPEN, SUPPRESSIONS, AlertBook, restore
from citybrain.clock import epoch, normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.errors import Conflict, NotFound, ValidationError
from citybrain.model.commands import current_places
from citybrain.ports import Ports
from citybrain.signals import LEVELS, SEVERITY
from citybrain.store import PutDoc
from citybrain.store.base import Doc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class AlertAction(msgspec.Struct, kw_only=True):
    """alert.ack / alert.resolve: which alert, and an optional note."""

    alert_id: str
    note: str = ""


class AlertEscalation(msgspec.Struct, kw_only=True):
    """alert.escalate: hand an alert up (to an organisation) and optionally raise its warning level."""

    alert_id: str
    to: str | None = None
    level: str | None = None
    note: str = ""


class Suppression(msgspec.Struct, kw_only=True):
    """alert.suppress: no alerts from an entity or place (and everything in it) between from and until."""

    target: str
    until: str
    start: str | None = msgspec.field(default=None, name="from")
    reason: str = "maintenance"


class CaseLink(msgspec.Struct, kw_only=True):
    """alert.link: the case opened for an alert."""

    alert_id: str
    case_id: str


EVENTS = ("cb.event.command.alert.>",)


async def _stored(rt: CityBrain, alert_id: str) -> tuple[dict[str, Any], Doc]:
    """Return the in-memory form of an alert's stored document (the truth on every process) and the document."""
    book = rt.ports.own(Ports.alerts, AlertBook)
    doc = await book.fetch(alert_id)
    if doc is None:
        raise NotFound(f"unknown alert {alert_id}", field="alert_id")
    return restore(doc.data), doc


def _step(alert: dict[str, Any], status: str, ctx: Context, note: str, rt: CityBrain, **extra: Any) -> dict[str, Any]:
    if alert["status"] not in OPEN:
        raise Conflict(f"alert {alert['id']} is {alert['status']}; it cannot be {status}", field="alert_id")
    alert["status"] = status
    # ref: the command's context, so that each process applies the step to its copy exactly once
    entry = {"status": status, "time": rt.now(), "actor": ctx.actor, "note": note, "ref": ctx.id, **extra}
    alert["history"].append(entry)
    return entry


def _write(rt: CityBrain, alert: dict[str, Any], doc: Doc, entry: dict[str, Any] | None, after: Any = None) -> Outcome:
    """Return the outcome writing an alert at the version read; its event carries the change for every process."""
    book = rt.ports.own(Ports.alerts, AlertBook)
    change = {"alert_id": alert["id"], "status": alert["status"], "warningLevel": alert["warningLevel"],
              "severity": alert["severity"], "validTo": alert.get("validTo"), "case": alert.get("case"),
              "entry": entry, "version": doc.version + 1}

    async def done() -> None:
        await book.apply(change)  # here at once; other processes from the event
        if after is not None:
            await after()

    return Outcome(ops=[PutDoc(COLLECTION, alert["id"], AlertBook.public(alert), expect_version=doc.version)],
                   result=AlertBook.public(alert), event={"alert_id": alert["id"], "change": change}, after=done)


async def _ack(rt: CityBrain, cmd: AlertAction, ctx: Context) -> Outcome:
    alert, doc = await _stored(rt, cmd.alert_id)
    if alert["status"] == "acknowledged":
        return Outcome(result=AlertBook.public(alert), record=False)  # acknowledging twice changes nothing
    entry = _step(alert, "acknowledged", ctx, cmd.note, rt)
    return _write(rt, alert, doc, entry)


async def _escalate(rt: CityBrain, cmd: AlertEscalation, ctx: Context) -> Outcome:
    alert, doc = await _stored(rt, cmd.alert_id)
    before = alert["warningLevel"]
    level = cmd.level
    if level is None and before in LEVELS:
        level = LEVELS[min(LEVELS.index(before) + 1, len(LEVELS) - 1)]
    if level is not None and level not in LEVELS:
        raise ValidationError(f"level: {level!r} is not one of {', '.join(LEVELS)}", field="level")
    entry = _step(alert, "escalated", ctx, cmd.note, rt, to=cmd.to, level=level)
    if level is not None:
        alert["warningLevel"], alert["severity"] = level, SEVERITY[level]
    book = rt.ports.own(Ports.alerts, AlertBook)

    async def after() -> None:
        await rt.emit("alert.escalated", {**book.event_data(alert), "from": before, "to": cmd.to, "auto": False},
                      ctx.child())

    return _write(rt, alert, doc, entry, after)


async def _resolve(rt: CityBrain, cmd: AlertAction, ctx: Context) -> Outcome:
    alert, doc = await _stored(rt, cmd.alert_id)
    if alert["status"] not in OPEN:
        raise Conflict(f"alert {alert['id']} is already {alert['status']}", field="alert_id")
    alert["status"] = "resolved"
    alert["validTo"] = rt.now()
    entry = {"status": "resolved", "time": rt.now(), "actor": ctx.actor, "note": cmd.note, "ref": ctx.id}
    alert["history"].append(entry)
    book = rt.ports.own(Ports.alerts, AlertBook)

    async def after() -> None:
        await rt.emit("alert.resolved", {**book.event_data(alert), "actor": ctx.actor, "note": cmd.note}, ctx.child())

    return _write(rt, alert, doc, entry, after)


async def _suppress(rt: CityBrain, cmd: Suppression, ctx: Context) -> Outcome:
    places = rt.ports.places
    if cmd.target not in places and cmd.target not in rt.ports.directory.types:
        raise NotFound(f"target: unknown entity or place {cmd.target}", field="target")
    start = normalise_time(cmd.start, "from") if cmd.start else rt.now()
    until = normalise_time(cmd.until, "until")
    if until <= start:
        raise ValidationError("until: must be after from", field="until")
    window: dict[str, Any] = {"id": new_id(), "target": cmd.target, "from": start, "until": until, "reason": cmd.reason,
              "from_ts": epoch(start), "until_ts": epoch(until), "actor": ctx.actor}
    book = rt.ports.own(Ports.alerts, AlertBook)

    async def after() -> None:
        book.add_window(window)  # here at once; every other process from the event

    return Outcome(ops=[PutDoc(SUPPRESSIONS, str(window["id"]), window)], result=window, after=after,
                   event={"window": window})


async def _link(rt: CityBrain, cmd: CaseLink, ctx: Context) -> Outcome:
    alert, doc = await _stored(rt, cmd.alert_id)
    alert["case"] = cmd.case_id
    return _write(rt, alert, doc, None)


async def _locate_alert(rt: CityBrain, cmd: AlertAction | AlertEscalation | CaseLink) -> str | None:
    """An alert command touches the alert's place (its cell, else its community); an unknown alert: none."""
    doc = await rt.ports.alerts.fetch(cmd.alert_id)
    if doc is None:
        return None
    return doc.data.get("place") or doc.data.get("community")


async def _locate_target(rt: CityBrain, cmd: Suppression) -> list[str | None]:
    """alert.suppress touches its target: a place itself, or an entity where it lies."""
    if cmd.target in rt.ports.places:
        return [cmd.target]
    return await current_places(rt, [cmd.target]) or [None]


async def setup(rt: CityBrain) -> None:
    """Create the alert book, feed it the signals and register the alert commands."""
    book = AlertBook(rt, float(rt.settings.extra.get("alert_resolve_after", 3600.0)))
    # every process follows these (no durable, no queue); subscribed before loading so nothing is missed
    await rt.bus.subscribe("cb.event.alert.raised", book.on_raised)
    for subject in EVENTS:
        await rt.bus.subscribe(subject, book.on_command)
    pipeline: Any = rt.ports.find(Ports.pipeline)
    partitioned = hasattr(pipeline, "on_acquire")
    if partitioned:  # the owner of a partition holds its open alerts; they move with the partition
        pipeline.on_acquire.append(book.take_partition)
        pipeline.on_release.append(book.leave_partition)
    await book.load(alerts=not partitioned)
    rt.ports.alerts = book
    rt.ports.signals.sinks.append(book.on_signals)
    rt.ports.situation.listeners.append(book.on_rows)
    rt.commands.register("alert.ack", AlertAction, _ack, "acknowledge an alert", place=_locate_alert)
    rt.commands.register("alert.escalate", AlertEscalation, _escalate, "escalate an alert (and raise its level)",
                         place=_locate_alert)
    rt.commands.register("alert.resolve", AlertAction, _resolve, "resolve an alert", place=_locate_alert)
    rt.commands.register("alert.suppress", Suppression, _suppress, "suppress alerts of an entity/place for a period",
                         place=_locate_target)
    rt.commands.register("alert.link", CaseLink, _link, "record the case opened for an alert", place=_locate_alert)
