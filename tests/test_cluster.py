"""Several processes of one node: singleton jobs and pipeline partitions on leases, takeover after a death.

Two runtimes sharing one MemoryBus stand in for two processes on one NATS server (the lease contract is
the same, tests/bus/test_leases.py); one test runs the same on real NATS JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import pytest
from services import require_service

from citybrain.bus.memory import MemoryBus
from citybrain.cluster import Cluster
from citybrain.config import Settings
from citybrain.runtime import CityBrain

COMPONENTS: list[str] = []  # the cluster alone: no feature components needed


def node(tmp_path: object, bus: object, pid: str, **more: object) -> CityBrain:
    """A runtime standing for one process of node `city`."""
    settings = Settings(store=":memory:", process_id=pid, lease_ttl=1.2, partitions=6, **more)  # type: ignore[arg-type]
    return CityBrain(settings, bus=bus if isinstance(bus, MemoryBus) else None, components=COMPONENTS)


async def wait_for(check: Callable[[], bool], limit: float = 5.0) -> float:
    """Wait until check() holds; return how long it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def crash(rt: CityBrain) -> None:
    """Stop renewing without handing anything over (what kill -9 does to the leases)."""
    assert rt.cluster._loop is not None
    rt.cluster._loop.cancel()
    for job in rt.cluster.jobs.values():
        if job.task is not None:
            job.task.cancel()


class Counter:
    """A singleton job that counts which process runs it."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}

    def job(self, pid: str) -> Callable[[], object]:
        async def run() -> None:
            self.running[pid] = self.running.get(pid, 0) + 1
            try:
                await asyncio.Event().wait()
            finally:
                self.running[pid] -= 1
        return run


async def test_one_process_takes_everything_at_start(tmp_path: object) -> None:
    rt = node(tmp_path, MemoryBus(), "solo")
    counter = Counter()
    acquired: list[int] = []

    async def acquire(n: int) -> None:
        acquired.append(n)

    async def release(n: int) -> None:
        acquired.remove(n)

    rt.cluster.singleton("sweep", counter.job("solo"))  # type: ignore[arg-type]
    rt.cluster.on_partitions(acquire, release)
    async with rt:
        assert sorted(acquired) == list(range(6))  # before start() returns: the pipeline is ready
        await wait_for(lambda: counter.running.get("solo") == 1)
        assert rt.cluster.describe()["jobs"] == ["sweep"]
    assert acquired == [] and counter.running["solo"] == 0  # stop handed everything back


async def test_partitions_are_shared_and_move_on_death(tmp_path: object) -> None:
    bus = MemoryBus()
    await bus.connect()
    a, b = node(tmp_path, bus, "a"), node(tmp_path, bus, "b")
    counter = Counter()
    owners: dict[int, list[str]] = {}

    def hooks(pid: str) -> tuple[Callable[[int], object], Callable[[int], object]]:
        async def acquire(n: int) -> None:
            owners.setdefault(n, []).append(pid)

        async def release(n: int) -> None:
            owners[n].remove(pid)
        return acquire, release

    for rt, pid in ((a, "a"), (b, "b")):
        rt.cluster.singleton("deadlines", counter.job(pid))  # type: ignore[arg-type]
        rt.cluster.on_partitions(*hooks(pid))  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        # a started alone with all six; when b joined, a handed back its extras: three each
        await wait_for(lambda: len(a.cluster.owned) == 3 and len(b.cluster.owned) == 3)
        assert all(len(who) == 1 for who in owners.values()), owners  # never two owners of a partition
        assert sum(counter.running.values()) == 1
        runner, other = (a, b) if counter.running.get("a") else (b, a)
        crash(runner)
        took = await wait_for(lambda: len(other.cluster.owned) == 6, limit=6.0)
        await wait_for(lambda: counter.running.get(other.cluster.process_id) == 1, limit=2.0)
        assert took <= runner.cluster.ttl + 2 * other.cluster.tick + 0.5
        assert other.cluster.members == [other.cluster.process_id]
    finally:
        for rt in (a, b):
            with contextlib.suppress(Exception):
                await rt.stop()


async def test_partition_of_is_stable_and_spread() -> None:
    rt = CityBrain(Settings(store=":memory:", partitions=8), components=COMPONENTS)
    cluster = Cluster(rt)
    ids = [f"urn:ngsi-ld:Community:c{i}" for i in range(200)]
    parts = [cluster.partition_of(c) for c in ids]
    assert parts == [cluster.partition_of(c) for c in ids]
    assert set(parts) == set(range(8))
    assert cluster.partition_of(None) == 0


@pytest.mark.nats
async def test_on_nats_a_job_moves_within_the_ttl() -> None:
    nats_url = "nats://127.0.0.1:4222"
    require_service("NATS", "127.0.0.1", 4222)
    token = uuid.uuid4().hex[:10]
    extra = {"bus": nats_url, "bus_stream": f"CLUSTER_{token}", "bus_prefix": f"c{token}"}
    a = CityBrain(Settings(store=":memory:", process_id="a", lease_ttl=1.5, partitions=4, **extra),  # type: ignore[arg-type]
                  components=COMPONENTS)
    b = CityBrain(Settings(store=":memory:", process_id="b", lease_ttl=1.5, partitions=4, **extra),  # type: ignore[arg-type]
                  components=COMPONENTS)
    counter = Counter()
    a.cluster.singleton("ledger", counter.job("a"))  # type: ignore[arg-type]
    b.cluster.singleton("ledger", counter.job("b"))  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        await wait_for(lambda: len(a.cluster.owned) == 2 and len(b.cluster.owned) == 2, limit=8.0)
        assert counter.running == {"a": 1}
        crash(a)
        took = await wait_for(lambda: counter.running.get("b") == 1, limit=8.0)
        assert took < 1.5 + 2 * b.cluster.tick + 1.0
        await wait_for(lambda: len(b.cluster.owned) == 4, limit=4.0)
    finally:
        from citybrain.bus.nats import NatsBus

        with contextlib.suppress(Exception):
            await b.stop()
        with contextlib.suppress(Exception):
            await a.stop()
        admin = NatsBus(nats_url, stream=extra["bus_stream"], prefix=extra["bus_prefix"])
        await admin.connect()
        await admin.delete_leases()
        await admin.delete_stream()
        await admin.close()


def test_component_options_from_the_environment() -> None:
    """CITYBRAIN_EXTRA carries component options (sweep periods, rule files) to every process of a node."""
    got = Settings.from_env({"CITYBRAIN_EXTRA": '{"plans_sweep": 1.5, "rules_file": "r.yaml"}'})
    assert got.extra == {"plans_sweep": 1.5, "rules_file": "r.yaml"}
    for bad in ("[1]", "{not json"):
        with pytest.raises(ValueError, match="CITYBRAIN_EXTRA"):
            Settings.from_env({"CITYBRAIN_EXTRA": bad})
