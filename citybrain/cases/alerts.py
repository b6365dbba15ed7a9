"""Alerts from the risk engine become cases: cb.event.alert.raised → intake (open or join) → file → route."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from citybrain.bus import Message
from citybrain.cases.desk import desk_of, stale_version
from citybrain.context import Context
from citybrain.errors import CityBrainError
from citybrain.events import decode_event

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.cases")
SUBJECT = "cb.event.alert.raised"


def intake_of(data: dict[str, Any]) -> dict[str, Any]:
    """Turn an alert's data into a case.intake payload."""
    return {"channel": "alert", "alert_category": str(data.get("category", "")), "place": data.get("place"),
            "severity": str(data.get("severity", "")), "source_id": str(data.get("alert_id", "")),
            "description": str(data.get("description", ""))[:4000],
            "title": str(data.get("title") or data.get("category") or "alert"),
            "attributes": {"rule": data.get("rule"), "alert_category": data.get("category")}}


async def subscribe_alerts(rt: CityBrain) -> None:
    """Listen for raised alerts (shared work queue, durable) and open or join cases without a person."""

    async def on_alert(msg: Message) -> None:
        event = decode_event(msg.data)
        payload = intake_of(event.data)
        ctx = Context(actor="system:alerts", parent_id=event.context.id, origin=event.context.origin)
        try:
            result = await desk_of(rt).submit(payload, ctx)
        except CityBrainError as exc:  # bad alert data: keep it with the reason instead of retrying forever
            await rt.dead_letter(f"bus:{msg.subject}", f"case intake refused the alert: {exc.detail}", msg.data)
            return
        if "alert.link" in rt.commands and payload["source_id"]:  # tell the alert book which case it opened
            link = {"alert_id": payload["source_id"], "case_id": result["id"]}
            for attempt in range(5):  # the raising pipeline may write the alert in between: link the fresh one
                try:
                    await rt.execute("alert.link", link, ctx.child("system:alerts"))
                    break
                except CityBrainError as exc:
                    if not stale_version(exc) or attempt == 4:
                        log.info("alert %s not linked to case %s: %s", payload["source_id"], result["id"], exc.detail)
                        break

    await rt.bus.subscribe(SUBJECT, on_alert, durable="cases-alerts", queue="cases-alerts")
