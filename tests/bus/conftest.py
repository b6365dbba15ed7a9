"""Bus fixtures: every contract test runs on MemoryBus and on NatsBus (a fresh stream + subject prefix)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from services import require_service

from citybrain.bus import Bus
from citybrain.bus.memory import MemoryBus

NATS_URL = os.environ.get("CITYBRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
def nats_url() -> str:
    """The NATS server URL; skip (or fail when CI=true) if it is not reachable."""
    parts = urlsplit(NATS_URL)
    require_service("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    return NATS_URL


@dataclass
class BusKit:
    """Makes connected buses of one kind sharing one stream/prefix, and cleans them up."""

    kind: str
    url: str
    stream: str
    prefix: str
    options: dict[str, Any] = field(default_factory=dict)
    buses: list[Bus] = field(default_factory=list)
    _memory: MemoryBus | None = None

    def subject(self, tail: str) -> str:
        """Return `tail` under this test's subject prefix."""
        return f"{self.prefix}.{tail}"

    async def new(self, **options: Any) -> Bus:
        """Return a connected bus (for memory: the same instance, it is the whole 'server')."""
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryBus()
                await self._memory.connect()
                self.buses.append(self._memory)
            return self._memory
        from citybrain.bus.nats import NatsBus

        opts = {**self.options, **options}
        bus = NatsBus(self.url, stream=self.stream, subjects=[f"{self.prefix}.>"], **opts)
        await bus.connect()
        self.buses.append(bus)
        return bus

    async def cleanup(self) -> None:
        """Close every bus and delete the test stream; a bus that fails to close fails the test."""
        errors: list[BaseException] = []
        for bus in self.buses:
            try:
                await asyncio.wait_for(bus.close(), timeout=10)
            except Exception as exc:
                errors.append(exc)
        if self.kind == "nats":
            from citybrain.bus.nats import NatsBus

            admin = NatsBus(self.url, stream=self.stream, subjects=[f"{self.prefix}.>"])
            await admin.connect()
            await admin.delete_stream()
            await admin.close()
        if errors:
            raise errors[0]


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[BusKit]:
    """A bus kit per adapter; the NATS one uses a unique stream and subject prefix."""
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        k = BusKit("memory", "memory", f"T{tag}", f"t{tag}")
    else:
        url: str = request.getfixturevalue("nats_url")
        k = BusKit(
            "nats",
            url,
            f"T{tag}",
            f"t{tag}",
            options={"retry_delay": 0.02, "ack_wait": 5.0, "idle_heartbeat": 0.5, "pull_expires": 2.0},
        )
    try:
        yield k
    finally:
        await k.cleanup()


@pytest.fixture
async def bus(kit: BusKit) -> Bus:
    """A connected bus of the kit's kind."""
    return await kit.new()
