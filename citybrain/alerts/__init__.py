"""Alerts: raised from rule and detector signals; acknowledged, escalated and resolved by commands.

Commands: alert.ack, alert.escalate, alert.resolve, alert.suppress (maintenance window for an entity or
place), alert.link (the case an alert opened). Events: alert.raised, alert.escalated, alert.resolved
(subjects cb.event.alert.*), plus the command events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.alerts.book import OPEN, SUPPRESSIONS, AlertBook
from citybrain.clock import normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.errors import Conflict, NotFound, ValidationError
from citybrain.rules.spec import LEVELS, SEVERITY
from citybrain.situation.stats import epoch
from citybrain.store import PutDoc

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


async def _alert(rt: CityBrain, alert_id: str) -> dict[str, Any]:
    book: AlertBook = rt.services["alerts"]
    await book.outbox.flush()  # queued pipeline writes of this alert commit before the command's
    alert = book.by_id.get(alert_id)
    if alert is None:
        raise NotFound(f"unknown alert {alert_id}", field="alert_id")
    return alert


def _step(alert: dict[str, Any], status: str, actor: str, note: str, rt: CityBrain, **extra: Any) -> None:
    if alert["status"] not in OPEN:
        raise Conflict(f"alert {alert['id']} is {alert['status']}; it cannot be {status}", field="alert_id")
    alert["status"] = status
    alert["history"].append({"status": status, "time": rt.now(), "actor": actor, "note": note, **extra})


async def _ack(rt: CityBrain, cmd: AlertAction, ctx: Context) -> Outcome:
    alert = await _alert(rt, cmd.alert_id)
    if alert["status"] == "acknowledged":
        return Outcome(result=AlertBook.public(alert), record=False)  # acknowledging twice changes nothing
    _step(alert, "acknowledged", ctx.actor, cmd.note, rt)
    return Outcome(ops=[rt.services["alerts"].ops_for(alert)], result=AlertBook.public(alert))


async def _escalate(rt: CityBrain, cmd: AlertEscalation, ctx: Context) -> Outcome:
    alert = await _alert(rt, cmd.alert_id)
    before = alert["warningLevel"]
    level = cmd.level
    if level is None and before in LEVELS:
        level = LEVELS[min(LEVELS.index(before) + 1, len(LEVELS) - 1)]
    if level is not None and level not in LEVELS:
        raise ValidationError(f"level: {level!r} is not one of {', '.join(LEVELS)}", field="level")
    _step(alert, "escalated", ctx.actor, cmd.note, rt, to=cmd.to, level=level)
    if level is not None:
        alert["warningLevel"], alert["severity"] = level, SEVERITY[level]
    book: AlertBook = rt.services["alerts"]

    async def after() -> None:
        await rt.emit("alert.escalated", {**book.event_data(alert), "from": before, "to": cmd.to, "auto": False},
                      ctx.child())

    return Outcome(ops=[book.ops_for(alert)], result=AlertBook.public(alert), after=after)


async def _resolve(rt: CityBrain, cmd: AlertAction, ctx: Context) -> Outcome:
    alert = await _alert(rt, cmd.alert_id)
    if alert["status"] not in OPEN:
        raise Conflict(f"alert {alert['id']} is already {alert['status']}", field="alert_id")
    book: AlertBook = rt.services["alerts"]
    await book.resolve(alert, ctx.actor, cmd.note)
    return Outcome(result=AlertBook.public(alert))


async def _suppress(rt: CityBrain, cmd: Suppression, ctx: Context) -> Outcome:
    places = rt.services["places"]
    if cmd.target not in places and cmd.target not in rt.services["directory"].types:
        raise NotFound(f"target: unknown entity or place {cmd.target}", field="target")
    start = normalise_time(cmd.start, "from") if cmd.start else rt.now()
    until = normalise_time(cmd.until, "until")
    if until <= start:
        raise ValidationError("until: must be after from", field="until")
    window: dict[str, Any] = {"id": new_id(), "target": cmd.target, "from": start, "until": until, "reason": cmd.reason,
              "from_ts": epoch(start), "until_ts": epoch(until), "actor": ctx.actor}
    book: AlertBook = rt.services["alerts"]

    async def after() -> None:
        book.suppressions.append(window)

    return Outcome(ops=[PutDoc(SUPPRESSIONS, str(window["id"]), window)], result=window, after=after)


async def _link(rt: CityBrain, cmd: CaseLink, ctx: Context) -> Outcome:
    alert = await _alert(rt, cmd.alert_id)
    alert["case"] = cmd.case_id
    return Outcome(ops=[rt.services["alerts"].ops_for(alert)], result=AlertBook.public(alert))


async def setup(rt: CityBrain) -> None:
    """Create the alert book, feed it the signals and register the alert commands."""
    book = AlertBook(rt, float(rt.settings.extra.get("alert_resolve_after", 3600.0)))
    await book.load()
    rt.services["alerts"] = book
    rt.services["signals"].sinks.append(book.on_signals)
    rt.services["situation"].listeners.append(book.on_rows)
    rt.commands.register("alert.ack", AlertAction, _ack, "acknowledge an alert")
    rt.commands.register("alert.escalate", AlertEscalation, _escalate, "escalate an alert (and raise its level)")
    rt.commands.register("alert.resolve", AlertAction, _resolve, "resolve an alert")
    rt.commands.register("alert.suppress", Suppression, _suppress, "suppress alerts of an entity/place for a period")
    rt.commands.register("alert.link", CaseLink, _link, "record the case opened for an alert")
