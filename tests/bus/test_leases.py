"""The lease contract, on the in-process leases and on a JetStream key-value bucket."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from citybrain.bus.leases import Leases, MemoryLeases


@pytest.fixture(params=["memory", "nats"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[Leases]:
    """Leases with a 1 s TTL on each adapter."""
    if request.param == "memory":
        yield MemoryLeases(1.0)
        return
    nats_url = request.getfixturevalue("nats_url")
    from citybrain.bus.nats import NatsBus

    token = uuid.uuid4().hex[:10]
    bus = NatsBus(nats_url, stream=f"LEASES_{token}", prefix=f"l{token}")
    await bus.connect()
    try:
        yield await bus.leases(1.0)
    finally:
        await bus.delete_leases()
        await bus.delete_stream()
        await bus.close()


async def test_one_holder_at_a_time(leases: Leases) -> None:
    assert await leases.claim("job.ledger", "p1")
    assert not await leases.claim("job.ledger", "p2")
    assert await leases.claim("job.ledger", "p1")  # renewing
    assert await leases.holders("job.") == {"job.ledger": "p1"}


async def test_release_frees_at_once(leases: Leases) -> None:
    assert await leases.claim("part.3", "p1")
    await leases.release("part.3", "p1")
    assert await leases.claim("part.3", "p2")
    await leases.release("part.3", "p1")  # not p1's any more: nothing happens
    assert await leases.holders("part.") == {"part.3": "p2"}


async def test_an_unrenewed_lease_expires(leases: Leases) -> None:
    assert await leases.claim("job.sweep", "p1")
    await asyncio.sleep(1.6)
    assert await leases.claim("job.sweep", "p2")
    assert not await leases.claim("job.sweep", "p1")  # p1's renewal finds p2's revision


async def test_renewal_keeps_it_past_the_ttl(leases: Leases) -> None:
    assert await leases.claim("member.p1", "p1")
    for _ in range(4):
        await asyncio.sleep(0.4)
        assert await leases.claim("member.p1", "p1")
    assert not await leases.claim("member.p1", "p2")
    assert "member.p1" in await leases.holders("member.")


async def test_a_server_list_reaches_a_live_server(nats_url: str) -> None:
    """CITYBRAIN_BUS may list the cluster's servers: a dead first one does not stop the node."""
    from citybrain.bus.nats import NatsBus

    token = uuid.uuid4().hex[:10]
    bus = NatsBus(f"nats://127.0.0.1:1,{nats_url}", stream=f"LIST_{token}", prefix=f"s{token}", replicas=1)
    await bus.connect()
    try:
        got: list[bytes] = []

        async def keep(msg: object) -> None:
            got.append(msg.data)  # type: ignore[attr-defined]

        await bus.subscribe("cb.x", keep)
        await bus.publish("cb.x", b"1")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [b"1"]
    finally:
        await bus.delete_stream()
        await bus.close()
