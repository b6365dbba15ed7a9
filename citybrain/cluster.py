"""This process among the node's processes: membership, singleton jobs and pipeline partitions, on leases.

A node is one or more processes on one store and one bus. Work that must run exactly once per node
(ledger appender, deadline and plan sweeps, absence sweeps, demo replay, federation sender/receiver) is
registered with `singleton(name, job)`: it runs only while this process holds the lease `job.<name>`,
and a surviving process starts it within `lease_ttl` (+ one tick) of its owner's death. The
observation pipeline is split into `partitions` (cb.obs.<n>, keyed by community); every live process
(`member.<process id>` lease) takes a fair share (ceil(partitions / members)) of the partition leases
`part.<n>`, hands extras back when a process joins, and calls the pipeline's `acquire(n)` /
`release(n)` hooks so that the partition's state moves with it. On one process (SQLite and the
in-process bus) every lease is granted at once, so the embedded default behaves as before.

A lease can be lost without the process knowing right away (a stalled event loop), so jobs and
partition handlers still write with version checks and idempotent keys: the lease makes duplicate
work rare, the store makes it harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citybrain.bus.leases import Leases, lease_key
from citybrain.context import new_id

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger("citybrain.cluster")

JobFactory = Callable[[], Coroutine[Any, Any, Any]]
PartitionHook = Callable[[int], Awaitable[None]]


def default_process_id() -> str:
    """Return <host>-<pid>-<random>: unique among the node's processes, readable in logs."""
    return lease_key(f"{socket.gethostname()}-{os.getpid()}-{new_id()[-6:]}")


@dataclass
class _Job:
    name: str
    factory: JobFactory
    restart: bool = True
    task: asyncio.Task[Any] | None = None
    finished: bool = False


class Cluster:
    """Leases of this process: who runs which singleton job and which pipeline partitions."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.process_id = lease_key(rt.settings.process_id) if rt.settings.process_id else default_process_id()
        self.partitions = max(1, int(rt.settings.partitions))
        self.ttl = max(0.5, float(rt.settings.lease_ttl))
        self.tick = self.ttl / 3  # renew three times per TTL: one lost round trip does not lose a lease
        self.leases: Leases | None = None
        self.jobs: dict[str, _Job] = {}
        self.owned: set[int] = set()
        self.members: list[str] = [self.process_id]
        self._acquire: list[PartitionHook] = []
        self._release: list[PartitionHook] = []
        self._loop: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.takeovers = 0
        self.stopping = False  # set by stop(): release hooks run for a shutdown, not a rebalance
        self._reports: dict[str, Callable[[], Any]] = {}

    # registration -----------------------------------------------------------------------------
    def partition_of(self, community: str | None) -> int:
        """Return the pipeline partition of a community (stable across processes and restarts)."""
        if not community or self.partitions == 1:
            return 0
        return zlib.crc32(community.encode()) % self.partitions

    def singleton(self, name: str, factory: JobFactory, *, restart: bool = True) -> None:
        """Run `factory()` on exactly one process of the node at a time, restarted if it ends or fails.

        restart=False: a one-shot job (it must be idempotent: a process that takes the lease over later
        runs it again, so it checks the store for work already done)."""
        if name in self.jobs:
            raise ValueError(f"singleton job {name!r} is registered twice")
        self.jobs[name] = _Job(name, factory, restart)
        if self._loop is not None:
            self.rt.spawn(self._round(), name="cluster-round")

    def on_partitions(self, acquire: PartitionHook, release: PartitionHook) -> None:
        """Call acquire(n) when this process takes partition n and release(n) before it gives n up."""
        self._acquire.append(acquire)
        self._release.append(release)
        if self._loop is not None:
            self.rt.spawn(self._replay_owned(acquire), name="cluster-partitions")

    def report(self, name: str, describe: Callable[[], Any]) -> None:
        """Add `name: describe()` to what `describe()` (GET /-/cluster) shows of this process."""
        self._reports[name] = describe

    async def _replay_owned(self, acquire: PartitionHook) -> None:
        async with self._lock:
            for n in sorted(self.owned):
                await acquire(n)

    # lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the node: take leases now (so one process starts with everything), then keep them."""
        self.stopping = False
        self.leases = await self.rt.bus.leases(self.ttl)
        self.ttl = self.leases.ttl
        self.tick = self.ttl / 3
        await self._round()
        self._loop = self.rt.spawn(self._keep(), name="cluster-leases")

    async def stop(self) -> None:
        """Hand everything over: stop jobs, release partitions (state saved first), leave."""
        self.stopping = True
        if self._loop is not None:
            # an inner wait_for (nats-py) can swallow one cancellation on 3.11: cancel until the loop ends
            while not self._loop.done():
                self._loop.cancel()
                await asyncio.wait({self._loop}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._loop.result()
            self._loop = None
        async with self._lock:
            for job in self.jobs.values():
                await self._stop_job(job)
            for n in sorted(self.owned):
                await self._give_up(n)
            if self.leases is not None:
                with contextlib.suppress(Exception):
                    await self.leases.release(f"member.{self.process_id}", self.process_id)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is down: we cannot renew, so assume nothing is ours
                log.warning("lease round failed: %r", exc)

    async def _round(self) -> None:
        """One renewal round: membership, jobs, partitions."""
        assert self.leases is not None
        leases = self.leases
        async with self._lock:
            await leases.claim(f"member.{self.process_id}", self.process_id)
            for job in self.jobs.values():
                if job.finished:
                    continue
                held = await leases.claim(f"job.{job.name}", self.process_id)
                running = job.task is not None and not job.task.done()
                if held and not running and job.task is not None and not job.restart:
                    job.finished = job.task.cancelled() or job.task.exception() is None
                    if job.finished:
                        await self._stop_job(job)
                        continue
                if held and not running:
                    if job.task is not None:  # it ended or failed: start again (after a pause)
                        log.warning("singleton job %s ended; restarting", job.name)
                    else:
                        log.info("this process (%s) runs singleton job %s", self.process_id, job.name)
                        self.takeovers += 1
                    job.task = self.rt.spawn(job.factory(), name=f"job-{job.name}")
                elif not held and running:
                    log.warning("lost the lease of job %s; stopping it here", job.name)
                    await self._stop_job(job)
            await self._balance(leases)

    async def _balance(self, leases: Leases) -> None:
        members = sorted((await leases.holders("member.")).values()) or [self.process_id]
        self.members = members
        share = math.ceil(self.partitions / len(members))
        for n in sorted(self.owned):  # renew what we hold
            if not await leases.claim(f"part.{n}", self.process_id):
                log.warning("lost partition %d (lease expired); dropping its state here", n)
                self.owned.discard(n)
                await self._notify(self._release, n)
        while len(self.owned) > share:  # a process joined: hand the highest extras back
            await self._give_up(max(self.owned))
        if len(self.owned) < share:
            taken = await leases.holders("part.")
            for n in range(self.partitions):
                if len(self.owned) >= share:
                    break
                if n in self.owned or f"part.{n}" in taken:
                    continue
                if await leases.claim(f"part.{n}", self.process_id):
                    self.owned.add(n)
                    await self._notify(self._acquire, n)

    async def _give_up(self, n: int) -> None:
        await self._notify(self._release, n)
        self.owned.discard(n)
        if self.leases is not None:
            await self.leases.release(f"part.{n}", self.process_id)

    async def _notify(self, hooks: list[PartitionHook], n: int) -> None:
        for hook in hooks:
            try:
                await hook(n)
            except Exception:
                log.exception("partition %d hook %r failed", n, hook)

    async def _stop_job(self, job: _Job) -> None:
        task, job.task = job.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(f"job.{job.name}", self.process_id)

    # introspection ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What this process runs: its id, the members it sees, its jobs and partitions."""
        out = {
            "process": self.process_id, "members": self.members, "partitions": self.partitions,
            "owned_partitions": sorted(self.owned), "lease_ttl_s": self.ttl,
            "jobs": sorted(n for n, j in self.jobs.items() if j.task is not None and not j.task.done()),
        }
        for name, describe in self._reports.items():
            out[name] = describe()
        return out
