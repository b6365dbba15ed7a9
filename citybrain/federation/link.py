"""The link of a node to the federation's JetStream: connect with backoff, watch it, cut and restore it.

Every node connects directly to the city's NATS server (or cluster). The link is "up" while the NATS
connection is connected; the sender and receiver loops pause while it is down. ``cut()`` closes the
connection and keeps it closed until ``restore()`` — the switch operators (and tests) use to take a
community offline without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from citybrain.federation.messages import stream_name

log = logging.getLogger(__name__)


def _now() -> str:
    """Return the wall-clock time of a link change (link state is about the real world, not the sim clock)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_cancelled() -> None:
    """Re-raise a cancellation that nats-py turned into a timeout (its fetch swallows CancelledError)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


# Retention of the federation stream. Every message also sits in its sender's outbox until JetStream has
# stored it, and receivers acknowledge after applying, so the stream only has to hold a message until every
# receiver has fetched it: 30 days covers the longest partition we plan for; 10 GiB bounds the disk.
STREAM_MAX_AGE_S = 30 * 24 * 3600.0
STREAM_MAX_BYTES = 10 * 1024**3


class Link:
    """One NATS connection with link-state bookkeeping (ups, downs, since when) and a kill switch."""

    def __init__(self, url: str, pfx: str, name: str, max_age_s: float = STREAM_MAX_AGE_S,
                 max_bytes: int = STREAM_MAX_BYTES) -> None:
        self.url = url
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.prefix = pfx
        self.stream = stream_name(pfx)
        self.name = name
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.enabled = True
        self.downs = 0
        self.ups = 0
        self.since = ""
        self.last_error = ""
        self._ready = asyncio.Event()
        self.on_up: list[Callable[[], Awaitable[None]]] = []

    @property
    def up(self) -> bool:
        """Tell whether the link is connected right now."""
        return self.enabled and self.nc is not None and self.nc.is_connected and self._ready.is_set()

    def status(self) -> dict[str, Any]:
        """Return the link state for listings."""
        state = "cut" if not self.enabled else ("up" if self.up else ("none" if not self.url else "down"))
        return {"state": state, "url": self.url, "ups": self.ups, "downs": self.downs, "since": self.since,
                "last_error": self.last_error}

    async def _disconnected(self) -> None:
        self.downs += 1
        self.since = _now()
        self._ready.clear()
        log.warning("federation link %s down", self.name)

    async def _reconnected(self) -> None:
        self.ups += 1
        self.since = _now()
        self._ready.set()
        for hook in self.on_up:
            with contextlib.suppress(Exception):
                await hook()

    async def _connect(self) -> None:
        nc = await nats.connect(
            self.url, name=self.name, connect_timeout=2, reconnect_time_wait=0.5, max_reconnect_attempts=-1,
            ping_interval=2, max_outstanding_pings=2, allow_reconnect=True,
            disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
            error_cb=self._error)
        self.nc = nc
        self.js = nc.jetstream(timeout=5)
        await self.ensure_stream()
        self.ups += 1
        self.since = _now()
        self._ready.set()

    async def _error(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def ensure_stream(self) -> None:
        """Create the federation stream (file storage, 2-minute duplicate window, bounded by age and size), or
        bring an existing stream's limits to the configured ones."""
        assert self.js is not None
        config = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.up.>", f"{self.prefix}.down.>"],
                              storage=StorageType.FILE, retention=RetentionPolicy.LIMITS, duplicate_window=120,
                              max_age=self.max_age_s, max_bytes=self.max_bytes)
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.add_stream(config)
            return
        have = info.config
        if (have.max_age or 0) != self.max_age_s or (have.max_bytes or -1) != self.max_bytes:
            have.max_age = self.max_age_s
            have.max_bytes = self.max_bytes
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.update_stream(have)

    async def run(self) -> None:
        """Keep the link connected while enabled: connect, and retry with exponential backoff."""
        delay = 0.2
        while True:
            if self.enabled and self.url and self.nc is None:
                try:
                    await self._connect()
                    delay = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await self._close()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                for hook in self.on_up:
                    with contextlib.suppress(Exception):
                        await hook()
            await asyncio.sleep(0.2)

    async def _close(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        self._ready.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def cut(self) -> None:
        """Take the link down and keep it down until restore()."""
        self.enabled = False
        if self.nc is not None:
            self.downs += 1
            self.since = _now()
        await self._close()

    async def restore(self) -> None:
        """Allow the link again (run() reconnects)."""
        self.enabled = True

    async def close(self) -> None:
        """Close for good (node stopping)."""
        self.enabled = False
        await self._close()

    async def publish(self, subject: str, data: bytes, msg_id: str) -> None:
        """Publish to JetStream with Nats-Msg-Id; return after the PubAck (raise if the link is down)."""
        if not self.up or self.js is None:
            raise ConnectionError("federation link is down")
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}, timeout=5)

    async def heartbeat(self, subject: str, data: bytes) -> None:
        """Publish a heartbeat on core NATS (not stored)."""
        if self.up and self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.publish(subject, data)
