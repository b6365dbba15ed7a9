"""The event relay: a committed event that its process never published (killed or cut off between commit and
publish) still reaches the other processes of the node, once; one that was published is not delivered twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cases.node import Node, nats_ready, pg_url, until

from citybrain.bus import Message
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.events import decode_event
from citybrain.runtime import CityBrain

pytestmark = [pytest.mark.postgres, pytest.mark.nats]


@pytest.fixture
def url() -> Iterator[str]:
    yield from pg_url()


def settings() -> Settings:
    return Settings(extra={"relay_delay": 0.5}, lease_ttl=1.5)


async def test_an_event_committed_but_never_published_reaches_the_other_processes(url: str) -> None:
    nats_ready()
    clock = FakeClock("2026-12-04T10:00:00Z")
    async with Node(url, settings, ["citybrain.model.commands"], "nats", clock) as node:
        a = await node.start()
        b = await node.start()
        seen: list[str] = []

        async def follow(msg: Message) -> None:
            seen.append(str(decode_event(msg.data).data.get("id")))

        await b.bus.subscribe("cb.event.command.entity.write", follow)
        await a.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:Vehicle:published", "type": "Vehicle"}})

        real = a.publish

        async def dies_before_publishing(event: object) -> None:
            raise ConnectionError("the process was killed between commit and publish")

        a.publish = dies_before_publishing  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await a.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:Vehicle:lost", "type": "Vehicle"}})
        a.publish = real  # type: ignore[method-assign]
        assert await a.store.get_entity("urn:ngsi-ld:Vehicle:lost") is not None  # committed
        await asyncio.sleep(0.3)
        assert seen == ["urn:ngsi-ld:Vehicle:published"]

        clock.advance(5)  # the relay sends what was recorded more than relay_delay ago
        relays = [rt.relay for rt in (a, b) if rt.relay is not None]
        assert len(relays) == 2

        async def relayed() -> bool:
            return "urn:ngsi-ld:Vehicle:lost" in seen

        await until(relayed, within=10, what="the lost event relayed to the other process")
        await asyncio.sleep(1.5)  # a few more relay rounds: nothing is delivered twice
        assert sorted(seen) == ["urn:ngsi-ld:Vehicle:lost", "urn:ngsi-ld:Vehicle:published"]
        assert sum(r.recovered for r in relays) == 1 and sum(r.relayed for r in relays) == 2
        assert sum(1 for r in relays if r.relayed) == 1  # one relay on the node: a singleton job


async def test_the_next_relay_carries_on_from_the_stored_cursor(url: str) -> None:
    nats_ready()
    clock = FakeClock("2026-12-04T10:00:00Z")
    async with Node(url, settings, ["citybrain.model.commands"], "nats", clock) as node:
        a: CityBrain = await node.start()
        for i in range(3):
            await a.execute("entity.write", {"entity": {"id": f"urn:ngsi-ld:Vehicle:v{i}", "type": "Vehicle"}})
        clock.advance(5)
        assert a.relay is not None

        async def caught_up() -> bool:
            return a.relay is not None and a.relay.relayed == 3

        await until(caught_up, within=10, what="the first relay through three events")
        await node.stop(a)
        b = await node.start()
        assert b.relay is not None
        await b.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:Vehicle:v3", "type": "Vehicle"}})
        clock.advance(5)

        async def next_one() -> bool:
            return b.relay is not None and b.relay.relayed >= 1

        await until(next_one, within=10, what="the next relay")
        await asyncio.sleep(1.2)
        assert b.relay.relayed == 1 and b.relay.recovered == 0  # only the new event, and it was on the bus
