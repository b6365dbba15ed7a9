"""MemoryBus specifics: queue hand-over, durable bookkeeping, a failing dead-letter sink."""

from __future__ import annotations

import asyncio

import pytest

from citybrain.bus import Message
from citybrain.bus.memory import MemoryBus
from citybrain.errors import Conflict


async def test_leaving_queue_member_hands_over_its_backlog() -> None:
    bus = MemoryBus()
    release = asyncio.Event()
    slow_got: list[bytes] = []
    fast_got: list[bytes] = []

    async def slow(msg: Message) -> None:
        await release.wait()
        slow_got.append(msg.data)

    async def fast(msg: Message) -> None:
        fast_got.append(msg.data)

    slow_sub = await bus.subscribe("cb.q", slow, queue="w")
    await bus.subscribe("cb.q", fast, queue="w")
    for i in range(10):
        await bus.publish("cb.q", str(i).encode())
    await asyncio.sleep(0.05)
    await slow_sub.unsubscribe()  # it was stuck on its first message and held four more
    await bus.drain()
    assert slow_got == []
    assert sorted(fast_got, key=int) == [str(i).encode() for i in range(10)]
    await bus.close()


async def test_failing_dead_letter_sink_does_not_stop_the_subscription() -> None:
    bus = MemoryBus()
    bus.max_deliver = 1
    got: list[bytes] = []

    async def sink(msg: Message, reason: str) -> None:
        raise OSError("sink down")

    bus.dead_letter = sink

    async def handler(msg: Message) -> None:
        if msg.data == b"bad":
            raise ValueError("bad")
        got.append(msg.data)

    await bus.subscribe("cb.s", handler)
    await bus.publish("cb.s", b"bad")
    await bus.publish("cb.s", b"good")
    await bus.drain()
    assert got == [b"good"]
    await bus.close()


async def test_durable_name_is_bound_to_its_subject() -> None:
    bus = MemoryBus()

    async def noop(msg: Message) -> None:
        return None

    await bus.subscribe("cb.a", noop, durable="d")
    with pytest.raises(Conflict):
        await bus.subscribe("cb.b", noop, durable="d")
    await bus.close()


async def test_positions_survive_log_trimming() -> None:
    bus = MemoryBus(keep=10)
    got: list[int] = []

    async def handler(msg: Message) -> None:
        got.append(int(msg.data))

    sub = await bus.subscribe("cb.t", handler, durable="d")
    for i in range(30):
        await bus.publish("cb.t", str(i).encode())
    await bus.drain()
    await sub.unsubscribe()
    for i in range(30, 35):
        await bus.publish("cb.t", str(i).encode())
    await bus.subscribe("cb.t", handler, durable="d")
    await bus.drain()
    assert got == list(range(35))
    await bus.close()


async def test_the_log_is_bounded_by_size_too() -> None:
    bus = MemoryBus(keep=100_000, keep_bytes=10_000)
    got: list[int] = []

    async def handler(msg: Message) -> None:
        got.append(int(msg.data[:6]))

    sub = await bus.subscribe("cb.t", handler, durable="d")
    for i in range(1000):
        await bus.publish("cb.t", f"{i:06d}".encode() + b" " * 994)  # 1 kB each
    await bus.drain()
    assert got == list(range(1000))  # live delivery is not limited by the log
    assert bus._log_bytes <= 11_000 and len(bus._log) <= 11 and bus._log_bytes == sum(len(m.data) for m in bus._log)
    await sub.unsubscribe()
    for i in range(1000, 1005):
        await bus.publish("cb.t", f"{i:06d}".encode() + b" " * 994)
    await bus.subscribe("cb.t", handler, durable="d")  # what was published while away is still replayed
    await bus.drain()
    assert got == list(range(1005))
    await bus.close()
