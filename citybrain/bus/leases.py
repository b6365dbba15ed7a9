"""Leases: named, time-limited claims that at most one process of a node holds at a time.

A lease is taken with `claim(name, holder)` and kept by claiming it again before `ttl` runs out; a
holder that stops renewing (crashed, partitioned, stuck) loses it after `ttl` and another process's
claim succeeds. Singleton jobs and observation-pipeline partitions are run under leases
(`citybrain.cluster`). Adapters: in-process (one process, or several runtimes sharing one MemoryBus in
tests) and a NATS JetStream key-value bucket whose TTL is the lease TTL (a compare-and-set on the
revision renews; an expired key is gone, so `create` succeeds for the next claimant). No consensus
protocol of our own: JetStream's replicated stream is the arbiter.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from typing import Any

_KEY_OK = re.compile(r"[^-/_=.a-zA-Z0-9]")


def lease_key(name: str) -> str:
    """Return `name` as a valid key-value key (other characters become '_')."""
    return _KEY_OK.sub("_", name)


class Leases(ABC):
    """The lease contract: claim/renew, release, list holders."""

    ttl: float

    @abstractmethod
    async def claim(self, name: str, holder: str) -> bool:
        """Take the lease if it is free, or renew it if `holder` has it; True if `holder` holds it now."""

    @abstractmethod
    async def release(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` has it (others may claim it at once)."""

    @abstractmethod
    async def holders(self, prefix: str = "") -> dict[str, str]:
        """Return every live lease whose name starts with `prefix`, with its holder."""


class MemoryLeases(Leases):
    """Leases inside one process (the embedded default; shared by runtimes sharing a MemoryBus)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: dict[str, tuple[str, float]] = {}  # name -> (holder, expires at, monotonic)

    def _live(self, name: str) -> str | None:
        got = self._held.get(name)
        if got is None:
            return None
        if got[1] <= time.monotonic():
            del self._held[name]
            return None
        return got[0]

    async def claim(self, name: str, holder: str) -> bool:
        """Take or renew the lease."""
        current = self._live(name)
        if current is not None and current != holder:
            return False
        self._held[name] = (holder, time.monotonic() + self.ttl)
        return True

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up."""
        if self._live(name) == holder:
            del self._held[name]

    async def holders(self, prefix: str = "") -> dict[str, str]:
        """Return the live leases under `prefix`."""
        out = {}
        for name in list(self._held):
            who = self._live(name)
            if who is not None and name.startswith(prefix):
                out[name] = who
        return out


class KvLeases(Leases):
    """Leases in a JetStream key-value bucket whose max age is the TTL."""

    def __init__(self, kv: Any, ttl: float) -> None:
        self.kv = kv
        self.ttl = ttl
        self._revision: dict[tuple[str, str], int] = {}  # (key, holder) we hold -> revision of our last write

    async def claim(self, name: str, holder: str) -> bool:
        """Renew by compare-and-set on our revision; otherwise create (fails while someone holds it)."""
        import nats.js.errors as jserr

        key = lease_key(name)
        value = holder.encode()
        mine = (key, holder)
        rev = self._revision.get(mine)
        if rev is not None:
            try:
                self._revision[mine] = await self.kv.update(key, value, last=rev)
                return True
            except jserr.KeyWrongLastSequenceError:
                self._revision.pop(mine, None)  # it expired and someone else took it (or recreate below)
        try:
            self._revision[mine] = await self.kv.create(key, value)
            return True
        except jserr.KeyWrongLastSequenceError:
            pass
        try:  # a key we wrote in an earlier life of this holder name
            entry = await self.kv.get(key)
        except (jserr.KeyNotFoundError, jserr.KeyDeletedError):
            return False
        if entry.value == value and entry.revision is not None:
            try:
                self._revision[mine] = await self.kv.update(key, value, last=entry.revision)
                return True
            except jserr.KeyWrongLastSequenceError:
                return False
        return False

    async def release(self, name: str, holder: str) -> None:
        """Delete the key if our revision is still the latest."""
        import nats.js.errors as jserr

        key = lease_key(name)
        rev = self._revision.pop((key, holder), None)
        if rev is None:
            return
        try:
            await self.kv.delete(key, last=rev)
        except (jserr.KeyWrongLastSequenceError, jserr.KeyNotFoundError, jserr.KeyDeletedError):
            pass

    async def holders(self, prefix: str = "") -> dict[str, str]:
        """List keys under `prefix` and read each holder."""
        import nats.js.errors as jserr

        try:
            keys = await self.kv.keys()
        except jserr.NoKeysError:
            return {}
        out: dict[str, str] = {}
        want = lease_key(prefix)
        for key in keys:
            if not key.startswith(want):
                continue
            try:
                entry = await self.kv.get(key)
            except (jserr.KeyNotFoundError, jserr.KeyDeletedError):
                continue
            if entry.value:
                out[key] = entry.value.decode()
        return out
