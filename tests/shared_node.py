"""One node, two processes, in one test process: two runtimes on one PostgreSQL schema and one NATS
JetStream stream (a fresh stream and subject prefix per test), each with its own HTTP client; or, for the
embedded default, one runtime on SQLite and the in-process bus standing for both.

Also a notification receiver: a real HTTP server on 127.0.0.1 that records what it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from aiohttp import web
from services import pg_schema_url, require_service

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain

NATS_URL = os.environ.get("CITYBRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222")
# what the shared state needs: the model (directory), ingest and NGSI-LD (subscriptions, notifier)
COMPONENTS = ["citybrain.model.commands", "citybrain.ingest.observations", "citybrain.ngsi"]
KINDS = ["postgres+nats", "sqlite+memory"]


@dataclass
class Process:
    """One process of the node: its runtime and an HTTP client to it."""

    name: str
    rt: CityBrain
    http: httpx.AsyncClient


@dataclass
class Node:
    """Processes `a` and `b` of one node (the same process on the embedded default)."""

    kind: str
    settings: Callable[[str], Settings]
    procs: dict[str, Process] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        """True when a and b are two processes (PostgreSQL + NATS)."""
        return self.kind == "postgres+nats"

    @property
    def a(self) -> Process:
        """The first process."""
        return self.procs["a"]

    @property
    def b(self) -> Process:
        """The second process (the first one again on the embedded default)."""
        return self.procs["b" if self.shared else "a"]

    async def start(self, name: str) -> Process:
        """Start process `name` (a new runtime on the node's store and bus)."""
        rt = CityBrain(self.settings(name), components=COMPONENTS)
        await rt.start()
        app = create_app(rt, manage_runtime=False)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test")
        self.procs[name] = Process(name, rt, client)
        return self.procs[name]

    async def stop(self, name: str) -> None:
        """Stop process `name` gracefully."""
        proc = self.procs.pop(name)
        await proc.http.aclose()
        await proc.rt.stop()

    async def restart(self, name: str) -> Process:
        """Stop process `name` and start it again (the other one keeps running)."""
        name = name if self.shared else "a"
        await self.stop(name)
        return await self.start(name)

    async def close(self) -> None:
        """Stop every process."""
        for name in list(self.procs):
            await self.stop(name)


@contextlib.asynccontextmanager
async def open_node(kind: str, tmp_path: Path) -> AsyncIterator[Node]:
    """Start a node of `kind` (see KINDS) with its processes; stop it and drop its stream and schema after."""
    if kind == "sqlite+memory":
        node = Node(kind, lambda name: Settings(store=str(tmp_path / "node.db"), bus="memory", process_id=name))
        await node.start("a")
        try:
            yield node
        finally:
            await node.close()
        return
    parts = urlsplit(NATS_URL)
    require_service("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    schema = contextlib.contextmanager(pg_schema_url)()
    store = schema.__enter__()
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"S{tag}", f"s{tag}"

    def settings(name: str) -> Settings:
        return Settings(store=store, bus=NATS_URL, bus_stream=stream, bus_prefix=prefix, process_id=name)

    node = Node(kind, settings)
    try:
        await node.start("a")
        await node.start("b")
        yield node
    finally:
        await node.close()
        from citybrain.bus.nats import NatsBus

        admin = NatsBus(NATS_URL, stream=stream, prefix=prefix)
        await admin.connect()
        await admin.delete_leases()
        await admin.delete_stream()
        await admin.close()
        schema.__exit__(None, None, None)


class Receiver:
    """An HTTP server on 127.0.0.1 keeping every notification POSTed to it."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _take(self, request: web.Request) -> web.Response:
        self.got.append(orjson.loads(await request.read()))
        return web.Response(status=204)

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/notify"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def values(self, attr: str) -> list[Any]:
        """Return the value of `attr` in every notified entity, in arrival order."""
        out = []
        for note in self.got:
            for entity in note["data"]:
                a = entity.get(attr)
                out.append(a.get("value") if isinstance(a, dict) else a)
        return out


async def eventually(check: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Wait until check() holds (what another process learns from the bus arrives within milliseconds)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.02)


async def quiet(seconds: float = 0.5) -> None:
    """Give late (duplicate) deliveries time to show up before asserting that none came."""
    await asyncio.sleep(seconds)
