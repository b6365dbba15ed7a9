"""The bus contract, run against every adapter (MemoryBus and NatsBus)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from citybrain.bus import Bus, Message

if TYPE_CHECKING:
    from conftest import BusKit


async def eventually(check: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Poll `check` until it is true, or fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class Inbox:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.got: list[Message] = []

    async def __call__(self, msg: Message) -> None:
        self.got.append(msg)

    @property
    def data(self) -> list[bytes]:
        """The payloads received so far."""
        return [m.data for m in self.got]

    async def wait(self, n: int, within: float = 10.0) -> None:
        """Wait until at least `n` messages arrived."""
        await eventually(lambda: len(self.got) >= n, within, f"{n} messages (have {len(self.got)})")


async def test_publish_subscribe(kit: BusKit, bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(kit.subject("ps.a"), inbox)
    await bus.publish(kit.subject("ps.a"), b"one", msg_id="m-1", headers={"k": "v"})
    await bus.publish(kit.subject("ps.b"), b"other subject")
    await bus.publish(kit.subject("ps.a"), b"two")
    await inbox.wait(2)
    await asyncio.sleep(0.2)
    assert inbox.data == [b"one", b"two"]
    first = inbox.got[0]
    assert first.subject == kit.subject("ps.a")
    assert first.headers == {"k": "v"}
    assert first.msg_id == "m-1"
    assert first.delivery == 1
    assert 0 < first.seq < inbox.got[1].seq
    assert inbox.got[1].msg_id is None and inbox.got[1].headers == {}


async def test_wildcards(kit: BusKit, bus: Bus) -> None:
    star, tail, exact = Inbox(), Inbox(), Inbox()
    await bus.subscribe(kit.subject("w.*.x"), star)
    await bus.subscribe(kit.subject("w.>"), tail)
    await bus.subscribe(kit.subject("w.a.x"), exact)
    for s in ("w.a.x", "w.b.x", "w.a.y", "w.a.x.z", "v.a.x"):
        await bus.publish(kit.subject(s), s.encode())
    await tail.wait(4)
    await star.wait(2)
    await exact.wait(1)
    await asyncio.sleep(0.2)
    assert star.data == [b"w.a.x", b"w.b.x"]
    assert tail.data == [b"w.a.x", b"w.b.x", b"w.a.y", b"w.a.x.z"]
    assert exact.data == [b"w.a.x"]


async def test_order_per_subscriber_even_with_retries(kit: BusKit, bus: Bus) -> None:
    got: list[int] = []
    failures = Counter[int]()

    async def handler(msg: Message) -> None:
        n = int(msg.data)
        if n in (7, 42) and failures[n] < 2:  # fail twice, then succeed
            failures[n] += 1
            raise RuntimeError("transient")
        got.append(n)

    await bus.subscribe(kit.subject("ord.*"), handler)
    for i in range(200):
        await bus.publish(kit.subject(f"ord.{i % 3}"), str(i).encode())
    await eventually(lambda: len(got) >= 200, what="200 messages")
    assert got == list(range(200))
    assert failures == {7: 2, 42: 2}


async def test_msg_id_dedupe(kit: BusKit, bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(kit.subject("dd"), inbox)
    await bus.publish(kit.subject("dd"), b"a", msg_id="x1")
    await bus.publish(kit.subject("dd"), b"a again", msg_id="x1")
    await bus.publish(kit.subject("dd"), b"b", msg_id="x2")
    await inbox.wait(2)
    await asyncio.sleep(0.3)
    assert inbox.data == [b"a", b"b"]
    replay = Inbox()
    await bus.subscribe(kit.subject("dd"), replay, deliver_all=True)
    await replay.wait(2)
    await asyncio.sleep(0.2)
    assert replay.data == [b"a", b"b"]


async def test_publish_many_keeps_order_and_dedupes(kit: BusKit, bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(kit.subject("pm.>"), inbox)
    batch = [Message(kit.subject(f"pm.{i % 4}"), str(i).encode(), msg_id=f"pm-{i}") for i in range(300)]
    await bus.publish_many(batch)
    await bus.publish_many(batch[:10])  # same ids: stored once
    await inbox.wait(300)
    await asyncio.sleep(0.3)
    assert inbox.data == [str(i).encode() for i in range(300)]


async def test_queue_group_shares_work(kit: BusKit) -> None:
    bus_a = await kit.new()
    bus_b = await kit.new()  # for NATS a second connection, like a second node
    a, b = Inbox(), Inbox()
    await bus_a.subscribe(kit.subject("job.*"), a, queue="workers")
    await bus_b.subscribe(kit.subject("job.*"), b, queue="workers")
    for i in range(100):
        await bus_a.publish(kit.subject(f"job.{i % 5}"), str(i).encode())
    await eventually(lambda: len(a.got) + len(b.got) >= 100, what="100 jobs")
    await asyncio.sleep(0.3)
    all_ = sorted(int(d) for d in a.data + b.data)
    assert all_ == list(range(100)), "each job exactly once"
    assert a.got and b.got, f"both members work (a={len(a.got)}, b={len(b.got)})"


async def test_queue_group_keeps_work_while_no_member(kit: BusKit, bus: Bus) -> None:
    first = Inbox()
    sub = await bus.subscribe(kit.subject("qk"), first, queue="q")
    await bus.publish(kit.subject("qk"), b"1")
    await first.wait(1)
    await sub.unsubscribe()
    await bus.publish(kit.subject("qk"), b"2")
    await bus.publish(kit.subject("qk"), b"3")
    later = Inbox()
    await bus.subscribe(kit.subject("qk"), later, queue="q")
    await later.wait(2)
    await asyncio.sleep(0.2)
    assert later.data == [b"2", b"3"]


@pytest.mark.parametrize("queue", [None, "grp"])
async def test_redelivery_after_failure(kit: BusKit, bus: Bus, queue: str | None) -> None:
    deliveries: list[int] = []
    done: list[bytes] = []

    async def handler(msg: Message) -> None:
        deliveries.append(msg.delivery)
        if msg.delivery < 3:
            raise RuntimeError(f"attempt {msg.delivery}")
        done.append(msg.data)

    await bus.subscribe(kit.subject("rd"), handler, queue=queue)
    await bus.publish(kit.subject("rd"), b"payload")
    await eventually(lambda: bool(done), what="success on the third delivery")
    await asyncio.sleep(0.3)
    assert deliveries == [1, 2, 3]
    assert done == [b"payload"]


@pytest.mark.parametrize("queue", [None, "grp"])
async def test_dead_letter_after_max_deliver(kit: BusKit, bus: Bus, queue: str | None) -> None:
    bus.max_deliver = 3
    dead: list[tuple[Message, str]] = []
    attempts: list[int] = []
    ok: list[bytes] = []

    async def sink(msg: Message, reason: str) -> None:
        dead.append((msg, reason))

    bus.dead_letter = sink

    async def handler(msg: Message) -> None:
        if msg.data == b"poison":
            attempts.append(msg.delivery)
            raise ValueError("cannot handle")
        ok.append(msg.data)

    await bus.subscribe(kit.subject("dl"), handler, queue=queue)
    await bus.publish(kit.subject("dl"), b"poison", msg_id="p1")
    await bus.publish(kit.subject("dl"), b"fine")
    await eventually(lambda: bool(dead) and bool(ok), what="dead letter and the next message")
    await asyncio.sleep(0.5)
    assert attempts == [1, 2, 3]
    assert len(dead) == 1
    msg, reason = dead[0]
    assert msg.data == b"poison" and msg.msg_id == "p1" and msg.delivery == 3
    assert "cannot handle" in reason
    assert ok == [b"fine"]


async def test_deliver_all_replays_earlier_messages(kit: BusKit, bus: Bus) -> None:
    for i in range(3):
        await bus.publish(kit.subject("da"), str(i).encode())
    everything, new_only = Inbox(), Inbox()
    await bus.subscribe(kit.subject("da"), everything, deliver_all=True)
    await bus.subscribe(kit.subject("da"), new_only)
    await bus.publish(kit.subject("da"), b"3")
    await everything.wait(4)
    await new_only.wait(1)
    await asyncio.sleep(0.2)
    assert everything.data == [b"0", b"1", b"2", b"3"]
    assert new_only.data == [b"3"]


async def test_durable_resumes_after_resubscribe(kit: BusKit, bus: Bus) -> None:
    first = Inbox()
    sub = await bus.subscribe(kit.subject("du"), first, durable="reader")
    for i in range(5):
        await bus.publish(kit.subject("du"), str(i).encode())
    await first.wait(5)
    await sub.unsubscribe()
    for i in range(5, 10):
        await bus.publish(kit.subject("du"), str(i).encode())
    await asyncio.sleep(0.2)
    assert first.data == [str(i).encode() for i in range(5)]
    second = Inbox()
    await bus.subscribe(kit.subject("du"), second, durable="reader")
    await second.wait(5)
    await asyncio.sleep(0.3)
    assert second.data == [str(i).encode() for i in range(5, 10)]


async def test_durable_ignores_deliver_all_once_it_has_a_position(kit: BusKit, bus: Bus) -> None:
    first = Inbox()
    sub = await bus.subscribe(kit.subject("dp"), first, durable="d2", deliver_all=True)
    await bus.publish(kit.subject("dp"), b"a")
    await first.wait(1)
    await sub.unsubscribe()
    again = Inbox()
    await bus.subscribe(kit.subject("dp"), again, durable="d2", deliver_all=True)
    await bus.publish(kit.subject("dp"), b"b")
    await again.wait(1)
    await asyncio.sleep(0.3)
    assert again.data == [b"b"]


async def test_unsubscribe_stops_delivery(kit: BusKit, bus: Bus) -> None:
    inbox = Inbox()
    sub = await bus.subscribe(kit.subject("un"), inbox)
    await bus.publish(kit.subject("un"), b"before")
    await inbox.wait(1)
    await sub.unsubscribe()
    await sub.unsubscribe()  # idempotent
    await bus.publish(kit.subject("un"), b"after")
    await asyncio.sleep(0.5)
    assert inbox.data == [b"before"]


async def test_slow_handler_is_not_redelivered(kit: BusKit) -> None:
    bus = await kit.new(ack_wait=1.0) if kit.kind == "nats" else await kit.new()
    calls: list[bytes] = []

    async def slow(msg: Message) -> None:
        calls.append(msg.data)
        await asyncio.sleep(1.6 if kit.kind == "nats" else 0.05)

    await bus.subscribe(kit.subject("slow"), slow)
    await bus.publish(kit.subject("slow"), b"1")
    await bus.publish(kit.subject("slow"), b"2")
    await eventually(lambda: len(calls) >= 2, within=10)
    await asyncio.sleep(2.0 if kit.kind == "nats" else 0.1)
    assert calls == [b"1", b"2"], "held and running messages are kept alive past ack_wait"


async def test_ping_and_healthy(bus: Bus) -> None:
    await bus.ping()
    assert bus.healthy
