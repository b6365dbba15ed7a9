"""NatsBus specifics: restart-safe durables, reconnects, stream set-up, consumer clean-up."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest
from nats.js.api import StorageType

from citybrain.bus import Message, open_bus
from citybrain.bus.nats import NatsBus
from citybrain.errors import Conflict, Unavailable

pytestmark = pytest.mark.nats


async def eventually(check: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll `check` until it is true, or fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class Proxy:
    """A TCP proxy in front of the NATS server that a test can cut and restore."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (on the same port as before, if there was one)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0.05)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_w]
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.transport.abort()


@pytest.fixture
async def names(nats_url: str) -> AsyncIterator[tuple[str, str]]:
    """A unique (stream, subject prefix), with the stream deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"T{tag}", f"t{tag}"
    yield stream, prefix
    admin = NatsBus(nats_url, stream=stream, subjects=[f"{prefix}.>"])
    await admin.connect()
    await admin.delete_stream()
    await admin.close()


def make(url: str, names: tuple[str, str], **kw: object) -> NatsBus:
    """Return an unconnected NatsBus on the test's stream, tuned for quick tests."""
    stream, prefix = names
    opts: dict[str, object] = {"retry_delay": 0.02, "idle_heartbeat": 0.5, "pull_expires": 2.0}
    opts.update(kw)
    return NatsBus(url, stream=stream, subjects=[f"{prefix}.>"], **opts)  # type: ignore[arg-type]


async def test_durable_resumes_in_a_new_process(nats_url: str, names: tuple[str, str]) -> None:
    prefix = names[1]
    got: list[bytes] = []

    async def handler(msg: Message) -> None:
        got.append(msg.data)

    bus = make(nats_url, names)
    await bus.connect()
    await bus.subscribe(f"{prefix}.ev", handler, durable="proc")
    for i in range(5):
        await bus.publish(f"{prefix}.ev", str(i).encode())
    await eventually(lambda: len(got) == 5)
    await bus.close()
    assert not bus.healthy

    other = make(nats_url, names)
    await other.connect()
    for i in range(5, 8):
        await other.publish(f"{prefix}.ev", str(i).encode())
    await other.close()

    again = make(nats_url, names)
    await again.connect()
    got.clear()
    await again.subscribe(f"{prefix}.ev", handler, durable="proc")
    await eventually(lambda: len(got) == 3)
    await asyncio.sleep(0.3)
    await again.close()
    assert got == [b"5", b"6", b"7"]


async def test_survives_connection_loss(nats_url: str, names: tuple[str, str]) -> None:
    prefix = names[1]
    parts = urlsplit(nats_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 4222)
    await proxy.start()
    got: list[bytes] = []

    async def handler(msg: Message) -> None:
        got.append(msg.data)

    bus = make(f"nats://127.0.0.1:{proxy.port}", names)
    await bus.connect()
    try:
        await bus.subscribe(f"{prefix}.r", handler)
        await bus.subscribe(f"{prefix}.r", handler, durable="rd")
        await bus.publish(f"{prefix}.r", b"before")
        await eventually(lambda: got.count(b"before") == 2)

        await proxy.cut()
        await eventually(lambda: not bus.healthy, what="disconnect noticed")
        with pytest.raises(Unavailable):
            await bus.ping()

        async def restore() -> None:
            await asyncio.sleep(1.0)
            await proxy.start()

        restoring = asyncio.create_task(restore())
        # with a msg_id the publish may be retried safely; it completes once the server is back
        await bus.publish(f"{prefix}.r", b"during", msg_id="during-1")
        await restoring
        await eventually(lambda: bus.healthy, what="reconnect")
        await bus.ping()
        await bus.publish(f"{prefix}.r", b"after")
        await eventually(lambda: got.count(b"during") >= 2 and got.count(b"after") >= 2, within=15)
    finally:
        await bus.close()
        await proxy.cut()


async def test_connect_to_nothing_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = NatsBus(f"nats://127.0.0.1:{port}", connect_timeout=1.0)
    with pytest.raises(Unavailable):
        await asyncio.wait_for(bus.connect(), timeout=10)
    assert not bus.healthy
    with pytest.raises(Unavailable):
        await bus.ping()
    with pytest.raises(Unavailable):
        await bus.publish("cb.x", b"")


async def test_open_bus_returns_nats_bus() -> None:
    assert isinstance(open_bus("nats://127.0.0.1:4222", stream="X"), NatsBus)


async def test_subject_outside_stream_is_rejected(nats_url: str, names: tuple[str, str]) -> None:
    bus = make(nats_url, names)
    await bus.connect()
    try:
        with pytest.raises(ValueError):
            await bus.publish("elsewhere.x", b"")
    finally:
        await bus.close()


async def test_stream_is_created_then_updated(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    one = make(nats_url, names)
    await one.connect()
    two = NatsBus(nats_url, stream=stream, subjects=[f"{prefix}.>", f"x{prefix}.>"], duplicate_window=60.0)
    await two.connect()
    try:
        info = await two._jsm.stream_info(stream)
        assert set(info.config.subjects or []) == {f"{prefix}.>", f"x{prefix}.>"}
        assert info.config.duplicate_window == 60.0
        assert info.config.storage in (StorageType.FILE, "file")
        await two.publish(f"x{prefix}.a", b"ok")
        await one.purge()
        assert (await two._jsm.stream_info(stream)).state.messages == 0
    finally:
        await one.close()
        await two.close()


async def test_ephemeral_consumer_is_deleted_on_unsubscribe(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    bus = make(nats_url, names)
    await bus.connect()

    async def noop(msg: Message) -> None:
        return None

    try:
        sub = await bus.subscribe(f"{prefix}.e", noop)
        durable = await bus.subscribe(f"{prefix}.e", noop, durable="keep")
        assert len(await bus._jsm.consumers_info(stream)) == 2
        await sub.unsubscribe()
        await durable.unsubscribe()
        assert [c.name for c in await bus._jsm.consumers_info(stream)] == ["keep"]
    finally:
        await bus.close()


async def test_durable_on_another_subject_conflicts(nats_url: str, names: tuple[str, str]) -> None:
    prefix = names[1]
    bus = make(nats_url, names)
    await bus.connect()

    async def noop(msg: Message) -> None:
        return None

    try:
        await bus.subscribe(f"{prefix}.a", noop, durable="same")
        with pytest.raises(Conflict):
            await bus.subscribe(f"{prefix}.b", noop, durable="same")
    finally:
        await bus.close()


async def test_lost_consumer_is_recreated_from_position(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    bus = make(nats_url, names)
    await bus.connect()
    got: list[bytes] = []

    async def handler(msg: Message) -> None:
        got.append(msg.data)

    try:
        await bus.subscribe(f"{prefix}.l", handler, durable="lost")
        await bus.publish(f"{prefix}.l", b"1")
        await eventually(lambda: got == [b"1"])
        await bus._jsm.delete_consumer(stream, "lost")  # e.g. an operator or a server mishap
        await bus.publish(f"{prefix}.l", b"2")
        await eventually(lambda: got == [b"1", b"2"], within=15, what="delivery after re-creation")
    finally:
        await bus.close()


async def test_close_finishes_held_messages(nats_url: str, names: tuple[str, str]) -> None:
    prefix = names[1]
    bus = make(nats_url, names)
    await bus.connect()
    got: list[bytes] = []

    async def slowish(msg: Message) -> None:
        await asyncio.sleep(0.01)
        got.append(msg.data)

    await bus.subscribe(f"{prefix}.c", slowish, durable="closer")
    await bus.publish_many(Message(f"{prefix}.c", str(i).encode()) for i in range(50))
    await eventually(lambda: len(got) >= 1)
    await bus.close()
    handled = len(got)
    # whatever was not handled before close is still there for the durable
    rest: list[bytes] = []

    async def collect(msg: Message) -> None:
        rest.append(msg.data)

    again = make(nats_url, names)
    await again.connect()
    await again.subscribe(f"{prefix}.c", collect, durable="closer")
    await eventually(lambda: handled + len(rest) >= 50, what="the rest")
    await again.close()
    assert got + rest == [str(i).encode() for i in range(50)]


async def test_failed_dead_letter_sink_gets_another_chance(nats_url: str, names: tuple[str, str]) -> None:
    prefix = names[1]
    bus = make(nats_url, names)
    bus.max_deliver = 2
    sink_calls: list[int] = []
    kept: list[bytes] = []

    async def sink(msg: Message, reason: str) -> None:
        sink_calls.append(msg.delivery)
        if len(sink_calls) == 1:
            raise OSError("dead-letter store down")
        kept.append(msg.data)

    bus.dead_letter = sink

    async def failing(msg: Message) -> None:
        raise RuntimeError("poison")

    await bus.connect()
    try:
        await bus.subscribe(f"{prefix}.dl", failing, queue="w")
        await bus.publish(f"{prefix}.dl", b"poison")
        await eventually(lambda: kept == [b"poison"], what="the sink to keep it on the second try")
        assert len(sink_calls) == 2
    finally:
        await bus.close()
