"""HTTP API of alerts: /api/v1/alerts (list, one, actions) and the live SSE stream /api/v1/alerts/stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import StreamingResponse

from citybrain.alerts.book import COLLECTION, AlertBook
from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.bus import Message
from citybrain.confine import confine
from citybrain.errors import NotFound
from citybrain.events import decode_event
from citybrain.ports import Ports
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("")
async def list_alerts(
    request: Request,
    status: str | None = Query(None, description="raised, acknowledged, escalated, resolved, or 'open'"),
    category: str | None = None,
    place: str | None = Query(None, description="alerts in this place or any place below it"),
    limit: int = Query(200, ge=1, le=5000),
) -> Response:
    """List alerts, newest first."""
    rt = rt_of(request)
    place = confine(request, place)  # a place-scoped identity sees only its own area
    await rt.ports.own(Ports.alerts, AlertBook).outbox.flush()
    where: dict[str, Any] = {}
    if status and status != "open":
        where["status"] = status
    if category:
        where["category"] = category
    docs = [d.data for d in await rt.store.list_docs(COLLECTION, where, limit=100_000)]
    if status == "open":
        docs = [d for d in docs if d["status"] != "resolved"]
    if place:
        places = rt.ports.places
        if place not in places:
            raise NotFound(f"unknown place {place}", field="place")
        docs = [d for d in docs if any(p and places.within(p, place) for p in (d.get("place"), d.get("community")))]
    docs.sort(key=lambda d: d["dateIssued"], reverse=True)
    return json(docs[:limit])


@router.get("/stream")
async def stream(request: Request, max: int = Query(0, ge=0, description="close after this many events (0: never)"),
                 heartbeat: float = Query(15.0, gt=0),
                 place: str | None = Query(None, description="only alerts in this place or below it")) -> StreamingResponse:
    """Server-sent events: every alert.raised, alert.escalated and alert.resolved as it happens (in an area; a
    place-scoped caller: its own)."""
    rt = rt_of(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
    area = confine(request, place)
    places = rt.ports.places
    if area is not None and area not in places:
        raise NotFound(f"unknown place {area}", field="place")

    def inside(raw: bytes) -> bool:
        data = decode_event(raw).data
        return any(isinstance(p, str) and p in places and places.within(p, area or "")
                   for p in (data.get("place"), data.get("community")))

    async def handler(msg: Message) -> None:
        if area is not None and not inside(msg.data):
            return
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg.data)

    sub = await rt.bus.subscribe("cb.event.alert.>", handler)
    return StreamingResponse(sse(queue, sub, max, heartbeat), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def sse(queue: asyncio.Queue[bytes], sub: Any, limit: int, heartbeat: float) -> AsyncIterator[bytes]:
    """Yield SSE frames from queued events (with heartbeats) until `limit` events or the client leaves."""
    sent = 0
    try:
        yield b": connected\n\n"
        while not limit or sent < limit:
            try:
                raw = await asyncio.wait_for(queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            event = decode_event(raw)
            body = orjson.dumps({"type": event.type, "time": event.time, "id": event.id, **event.data})
            yield f"id: {event.id}\nevent: {event.type}\n".encode() + b"data: " + body + b"\n\n"
            sent += 1
    finally:
        await sub.unsubscribe()


@router.get("/{alert_id}")
async def one_alert(request: Request, alert_id: str) -> Response:
    """Return one alert with its members (which rule or detector fired on what data) and history."""
    rt = rt_of(request)
    doc = await rt.ports.alerts.fetch(alert_id)  # an alert raised on another process a moment ago too
    if doc is None:
        raise NotFound(f"unknown alert {alert_id}", field="alert_id")
    return json(doc.data)


@router.post("/{alert_id}/{action}")
async def act(request: Request, alert_id: str, action: str) -> Response:
    """Acknowledge, escalate or resolve an alert (body: optional note, to, level)."""
    if action not in ("ack", "escalate", "resolve"):
        raise NotFound(f"unknown alert action {action!r} (ack, escalate, resolve)", field="action")
    rt = rt_of(request)
    body = await read_json(request) if await request.body() else {}
    payload = {**(body if isinstance(body, dict) else {}), "alert_id": alert_id}
    # any process: the command works on the stored alert, again on a fresh copy if a pipeline write came between
    result = await rt.ports.own(Ports.alerts, AlertBook).run(f"alert.{action}", payload, context_of(request))
    return json(result)


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the alert routes."""
    app.include_router(router)


__all__ = ["mount", "AlertBook"]
