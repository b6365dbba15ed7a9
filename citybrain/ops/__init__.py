"""Operations: Prometheus /metrics, admission control (429/503), request context ids, graceful drain.

Mounted as an API extension (`mount(app, rt)` in `citybrain.api.app.EXTENSIONS`). Structured logs are
configured separately by `citybrain.ops.logs.configure_logging`, which `citybrain serve` calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST

from citybrain.clock import parse_time
from citybrain.ops.admission import Admission, Limits
from citybrain.ops.metrics import OpsStats, render

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citybrain.bus import Message
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.ops")
CONTENT_TYPE = CONTENT_TYPE_LATEST
ESCALATE_SUBJECT = "cb.event.command.case.escalate"


class Listeners:
    """Bus listeners feeding /metrics: ingest lag (sampled once a second) and case SLA breaches."""

    def __init__(self, rt: CityBrain, stats: OpsStats) -> None:
        self.rt = rt
        self.stats = stats
        self._next_sample = 0.0

    async def start(self) -> None:
        """Subscribe to stored observations and case escalations (best effort)."""
        from citybrain.obs import OBS_ALL

        for subject, handler in ((OBS_ALL, self.on_obs), (ESCALATE_SUBJECT, self.on_escalate)):
            try:
                await self.rt.bus.subscribe(subject, handler)
            except Exception as exc:  # metrics must never stop a node from starting
                log.warning("metrics: cannot listen to %s: %r", subject, exc)

    async def on_obs(self, msg: Message) -> None:
        """Sample the ingest lag: now minus the newest observedAt of a stored batch."""
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + 1.0
        from citybrain.obs import decode_rows

        try:
            newest = max(row.observed_at for row in decode_rows(msg.data))
            self.stats.lag_seconds = round((self.rt.clock.now() - parse_time(newest)).total_seconds(), 3)
        except Exception:  # a batch we cannot read says nothing about lag
            return

    async def on_escalate(self, msg: Message) -> None:
        """Count an escalation of an overdue case or task clock as an SLA breach."""
        self.stats.escalations += 1


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add /metrics, the admission middleware and the draining lifespan around the app's own."""
    stats = OpsStats()
    app.state.ops = stats
    app.add_middleware(Admission, rt=rt, stats=stats, limits=Limits.from_runtime(rt))

    @app.get("/metrics", tags=["introspection"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        """Prometheus metrics: ingest, queues, lag, notification failures, SLA breaches, HTTP."""
        return Response(render(rt, stats), media_type=CONTENT_TYPE)

    inner = app.router.lifespan_context
    listeners = Listeners(rt, stats)

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            if rt.started:
                await listeners.start()
            try:
                yield state
            finally:
                await drain(rt, stats)
        log.info("stopped: every acknowledged write is committed", extra={"commits": getattr(rt.store, "commits", 0)})

    app.router.lifespan_context = lifespan


async def drain(rt: CityBrain, stats: OpsStats, grace: float = 30.0) -> None:
    """Refuse new writes and wait (up to `grace` s) for in-progress writes and queued store batches."""
    stats.draining = True
    start = time.monotonic()
    pending = rt.store.pending
    log.info("draining: %d write requests in progress, %d store batches waiting", stats.inflight, pending,
             extra={"inflight": stats.inflight, "pending_writes": pending})
    while (stats.inflight > 0 or rt.store.pending > 0) and time.monotonic() - start < grace:  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # polled: the store has no "queue drained" event to wait on
    log.info("drained in %.2fs; stopping the runtime (bus drain, store flush)", time.monotonic() - start)
