"""NGSI-LD subscriptions shared by the processes of a node — 6 cases, each on two runtimes (PostgreSQL + NATS)
and on the embedded default (SQLite + in-process bus, one runtime standing for both).

Notifications go to a real HTTP server on 127.0.0.1. A subscription made through one process and deleted
through the other notifies from neither afterwards; an entity made on the other process matches; every
change is notified exactly once, also after one process restarts; the status (counts) is the node's, not a
process's; throttling holds across processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from shared_node import KINDS, Node, Process, Receiver, eventually, open_node, quiet

from citybrain.clock import parse_time

BASE = "/ngsi-ld/v1"
SUB = "urn:ngsi-ld:Subscription:shared"


@pytest.fixture(params=[pytest.param(k, marks=[pytest.mark.postgres, pytest.mark.nats]) if k.startswith("postgres")
                        else k for k in KINDS])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    async with open_node(request.param, tmp_path) as n:
        yield n


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


def vehicle(n: int, speed: float = 0.0) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Vehicle:v{n}", "type": "Vehicle", "speed": {"type": "Property", "value": speed}}


def subscription(uri: str, **extra: Any) -> dict[str, Any]:
    return {"id": SUB, "type": "Subscription", "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": uri}, "format": "keyValues"}, **extra}


async def subscribe(node: Node, through: Process, uri: str, **extra: Any) -> None:
    """Create the subscription through one process; wait until every process has it live."""
    r = await through.http.post(f"{BASE}/subscriptions", json=subscription(uri, **extra))
    assert r.status_code == 201, r.text
    for p in node.procs.values():
        await eventually(lambda p=p: SUB in p.rt.ports.ngsi_notifier.watches,  # type: ignore[misc]
                         what=f"subscription live on {p.name}")


async def set_speed(p: Process, n: int, speed: float) -> None:
    r = await p.http.patch(f"{BASE}/entities/urn:ngsi-ld:Vehicle:v{n}/attrs/speed", json={"value": speed})
    assert r.status_code == 204, r.text


async def make_vehicles(node: Node, count: int) -> None:
    """Create vehicles v0 … v<count-1> through the NGSI-LD API, alternating processes (before subscribing)."""
    for n in range(count):
        r = await [node.a, node.b][n % 2].http.post(f"{BASE}/entities", json=vehicle(n))
        assert r.status_code == 201, r.text


def notified_ids(receiver: Receiver) -> Counter[str]:
    return Counter(e["id"] for note in receiver.got for e in note["data"])


async def test_made_on_a_deleted_on_b_notifies_from_neither(node: Node, receiver: Receiver) -> None:
    a, b = node.a, node.b
    assert (await a.http.post(f"{BASE}/entities", json=vehicle(1))).status_code == 201
    await subscribe(node, a, receiver.url)
    await set_speed(b, 1, 10)
    await eventually(lambda: len(receiver.got) == 1, what="one notification")
    assert (await b.http.delete(f"{BASE}/subscriptions/{SUB}")).status_code == 204
    for p in node.procs.values():
        await eventually(lambda p=p: SUB not in p.rt.ports.ngsi_notifier.watches,  # type: ignore[misc]
                         what=f"subscription gone on {p.name}")
    assert (await a.http.get(f"{BASE}/subscriptions/{SUB}")).status_code == 404
    await set_speed(a, 1, 20)
    await set_speed(b, 1, 30)
    await quiet()
    assert receiver.values("speed") == [10]


async def test_entity_made_on_b_matches_a_subscription_made_on_a(node: Node, receiver: Receiver) -> None:
    await subscribe(node, node.a, receiver.url)
    assert (await node.b.http.post(f"{BASE}/entities", json=vehicle(7, 70))).status_code == 201
    await eventually(lambda: len(receiver.got) == 1, what="the new entity notified")
    await quiet()
    assert notified_ids(receiver) == {"urn:ngsi-ld:Vehicle:v7": 1} and receiver.values("speed") == [70]


async def exactly_once(node: Node, receiver: Receiver, first: int, count: int) -> None:
    """Change vehicles first … first+count-1 once each, alternating processes, by PATCH and by observation;
    assert that each is notified once."""
    procs = [node.a, node.b]
    for n in range(first, first + count):
        p = procs[n % 2]
        if n % 3:
            await set_speed(p, n, float(n))
        else:
            report = await p.rt.ports.ingest.submit(
                [{"entity": f"urn:ngsi-ld:Vehicle:v{n}", "observedAt": "2026-01-01T00:00:00Z", "values": {"speed": n}}])
            assert report.stored == 1
    wanted = {f"urn:ngsi-ld:Vehicle:v{n}" for n in range(first, first + count)}
    await eventually(lambda: wanted <= set(notified_ids(receiver)), what="every change notified")
    await quiet()
    got = notified_ids(receiver)
    assert {i: got[i] for i in wanted} == dict.fromkeys(wanted, 1)


async def test_each_change_is_notified_once(node: Node, receiver: Receiver) -> None:
    await make_vehicles(node, 12)
    await subscribe(node, node.a, receiver.url)
    await exactly_once(node, receiver, 0, 12)
    assert sum(notified_ids(receiver).values()) == 12


async def test_still_once_after_a_restart(node: Node, receiver: Receiver) -> None:
    await make_vehicles(node, 12)
    await subscribe(node, node.a, receiver.url)
    await exactly_once(node, receiver, 0, 6)
    await node.restart("b")
    await eventually(lambda: SUB in node.b.rt.ports.ngsi_notifier.watches, what="b loaded the subscription")
    await exactly_once(node, receiver, 6, 6)
    assert sum(notified_ids(receiver).values()) == 12


async def test_status_counts_what_every_process_sent(node: Node, receiver: Receiver) -> None:
    await make_vehicles(node, 8)
    await subscribe(node, node.b, receiver.url)
    await exactly_once(node, receiver, 0, 8)
    sent = len(receiver.got)

    async def times_sent(p: Process) -> int:
        r = await p.http.get(f"{BASE}/subscriptions/{SUB}")
        return int(r.json()["notification"].get("timesSent", 0))

    for p in node.procs.values():
        # counts of the other process arrive with its next status write (at most status_every later)
        for _ in range(100):
            if await times_sent(p) == sent:
                break
            await quiet(0.05)
        assert await times_sent(p) == sent, p.name


async def test_throttling_holds_across_processes(node: Node, receiver: Receiver) -> None:
    await make_vehicles(node, 4)
    await subscribe(node, node.a, receiver.url, throttling=0.5)
    procs = [node.a, node.b]
    for step in range(8):
        await set_speed(procs[step % 2], step % 4, float(100 + step))
        await quiet(0.05)
    # the last values arrive, and never two notifications inside one throttling interval (0.1 s for the
    # time between taking the slot and stamping the notification on a busy machine)
    await eventually(lambda: {101 + 3, 100 + 7} <= set(receiver.values("speed")), what="the last values")
    await quiet(0.5)
    times = sorted(parse_time(note["notifiedAt"]) for note in receiver.got)
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]
    assert len(times) >= 2 and all(g >= 0.4 for g in gaps), gaps
