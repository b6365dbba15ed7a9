"""Several processes of one node inside one test: runtimes sharing one PostgreSQL schema and one bus.

The bus is one in-process MemoryBus (it behaves like one NATS server: every subscriber without a queue gets
every message, a queue group shares them) seen through a `ProcessBus` per runtime, so that stopping one
runtime ends only its own subscriptions, as a process exiting would. With `kind="nats"` every runtime gets
its own connection to the NATS server instead, on a fresh stream and subject prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from services import pg_schema_url, require_service

from citybrain.bus import Bus, Handler, Subscription
from citybrain.bus.memory import MemoryBus
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain

NATS_URL = os.environ.get("CITYBRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222")


def pg_url() -> Iterator[str]:
    """Yield a fresh PostgreSQL schema's URL for the node's processes (use it from a fixture)."""
    yield from pg_schema_url()


def nats_ready() -> None:
    """Skip (or fail when CI=true) unless NATS runs and the bus takes a subject prefix per node."""
    from urllib.parse import urlsplit

    from citybrain.bus.nats import NatsBus

    parts = urlsplit(NATS_URL)
    require_service("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    if "prefix" not in inspect.signature(NatsBus).parameters:
        pytest.skip("this NatsBus has no subject prefix: runtimes cannot get a test's own subjects")


class ProcessBus(Bus):
    """One process's view of a MemoryBus shared by the node's runtimes; close() ends only its subscriptions."""

    def __init__(self, shared: MemoryBus) -> None:
        self.shared = shared
        self.subs: list[Subscription] = []

    @property
    def _subs(self) -> list[Any]:  # drill.settle() waits on every subscription of the shared bus
        return self.shared._subs

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Let this process's queued deliveries finish, then end its subscriptions (others keep theirs)."""
        for sub in self.subs:
            queue = getattr(sub, "queue", None)
            if queue is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(queue.join(), timeout=5)
        for sub in self.subs:
            await sub.unsubscribe()
        self.subs.clear()

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Publish on the shared bus."""
        await self.shared.publish(subject, data, msg_id=msg_id, headers=headers)

    async def subscribe(self, subject: str, handler: Handler, *, durable: str | None = None,
                        queue: str | None = None, deliver_all: bool = False) -> Subscription:
        """Subscribe on the shared bus (durable names and queue groups are the node's, shared)."""
        sub = await self.shared.subscribe(subject, handler, durable=durable, queue=queue, deliver_all=deliver_all)
        self.subs.append(sub)
        return sub

    async def ping(self) -> None:
        """Always reachable."""

    async def leases(self, ttl: float) -> Any:
        """The node's leases live with the shared bus, as they live in the NATS server."""
        return await self.shared.leases(ttl)  # type: ignore[attr-defined]

    async def drain(self) -> None:
        """Wait until everything published on the shared bus has been handled."""
        await self.shared.drain()


class Node:
    """The processes of one node: start, stop and restart runtimes on one store and one bus."""

    def __init__(self, url: str, settings: Callable[[], Settings], components: list[str], kind: str = "memory",
                 clock: FakeClock | None = None) -> None:
        self.url = url
        self.settings = settings
        self.components = components
        self.kind = kind
        self.clock = clock or FakeClock()
        self.shared = MemoryBus()
        self.token = uuid.uuid4().hex[:10]
        self.processes: list[CityBrain] = []

    async def start(self) -> CityBrain:
        """Start one more process of the node."""
        settings = self.settings()
        settings.store = self.url
        bus: Bus | None = None
        if self.kind == "memory":
            bus = ProcessBus(self.shared)
        else:
            settings.bus = NATS_URL
            settings.bus_stream = f"T{self.token}"
            settings.bus_prefix = f"t{self.token}"
        rt = CityBrain(settings, clock=self.clock, bus=bus, components=list(self.components))
        await rt.start()
        self.processes.append(rt)
        return rt

    async def stop(self, rt: CityBrain) -> None:
        """Stop one process (the others keep running)."""
        await rt.stop()
        self.processes.remove(rt)

    async def settle(self) -> None:
        """Let events published so far reach every process (in-process bus: delivered; NATS: a short wait)."""
        if self.kind == "memory":
            for _ in range(3):
                await self.shared.drain()
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.3)

    async def close(self) -> None:
        """Stop every process; delete the test's NATS stream."""
        for rt in list(reversed(self.processes)):
            await self.stop(rt)
        if self.kind == "nats":
            from citybrain.bus.nats import NatsBus

            admin = NatsBus(NATS_URL, stream=f"T{self.token}", prefix=f"t{self.token}")  # type: ignore[call-arg]
            await admin.connect()
            with contextlib.suppress(Exception):
                if hasattr(admin, "delete_leases"):  # the node's lease bucket goes with its stream
                    await admin.delete_leases()
                await admin.delete_stream()
            await admin.close()

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def until(check: Callable[[], Awaitable[bool]], within: float = 5.0, what: str = "condition") -> None:
    """Wait until `check()` is true (events cross processes asynchronously), or fail naming `what`."""
    end = time.monotonic() + within
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
