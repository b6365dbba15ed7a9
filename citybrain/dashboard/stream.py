"""Server-sent events for the dashboard: every bus event relayed live, scoped to an area."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from citybrain.bus import Message
from citybrain.events import decode_event
from citybrain.runtime import CityBrain

RELAYED = ("alert.", "risk.", "command.case.", "case.", "mode.", "command.mode.", "directive.", "command.directive.",
           "report.", "command.report.", "plan.")


class Relay:
    """Fans bus events out to connected dashboards (each client has a bounded queue)."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.clients: set[tuple[asyncio.Queue[bytes], str | None]] = set()
        self._subscribed = False

    async def ensure_subscribed(self) -> None:
        """Subscribe to the bus on first use (the bus is connected by then)."""
        if not self._subscribed:
            self._subscribed = True
            await self.rt.bus.subscribe("cb.event.>", self.on_event)

    async def on_event(self, msg: Message) -> None:
        """Forward a relayed event to every client whose area it concerns."""
        if not self.clients:
            return
        event = decode_event(msg.data)
        if not event.type.startswith(RELAYED):
            return
        payload = orjson.dumps({"type": event.type, "time": event.time, "data": event.data,
                                "actor": event.context.actor})
        places = self.rt.ports.places
        for queue, scope in list(self.clients):
            if scope and not self._in_scope(event.data, scope, places):
                continue
            if queue.qsize() < 1000:
                queue.put_nowait(payload)

    @staticmethod
    def _in_scope(data: dict[str, Any], scope: str, places: Any) -> bool:
        for key in ("place", "community", "area", "grid"):
            value = data.get(key)
            if isinstance(value, str) and value in places:
                return bool(places.within(value, scope) or places.within(scope, value))
        return False


def mount_stream(app: FastAPI, rt: CityBrain) -> Relay:
    """Add GET /api/v1/stream (text/event-stream) and subscribe the relay to the bus."""
    relay = Relay(rt)

    @app.get("/api/v1/stream", tags=["dashboard"])
    async def stream(request: Request, scope: str | None = None) -> StreamingResponse:
        """Live events (alerts, risk, cases, modes, directives) as server-sent events."""
        from citybrain.confine import confine, scope_of
        from citybrain.errors import Forbidden

        own = scope_of(request)  # `scope` is not one of the place parameters the trust middleware checks
        places = rt.ports.places
        if own and scope and not (scope in places and places.within(scope, own)):
            raise Forbidden(f"{scope} lies outside your area {own}", field="scope")
        scope = confine(request, scope)
        await relay.ensure_subscribed()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        client = (queue, scope or None)
        relay.clients.add(client)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while True:
                    try:
                        payload = await asyncio.wait_for(queue.get(), timeout=15)
                        yield b"data: " + payload + b"\n\n"
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                    if await request.is_disconnected():
                        break
            finally:
                with contextlib.suppress(KeyError):
                    relay.clients.remove(client)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return relay
