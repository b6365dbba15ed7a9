"""In-process adapter of the bus port (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict

from citybrain.bus.base import Bus, Handler, Message, Subscription, subject_matches


class _Sub(Subscription):
    def __init__(self, bus: MemoryBus, subject: str, handler: Handler, group: str | None) -> None:
        self.bus = bus
        self.subject = subject
        self.handler = handler
        self.group = group
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name=f"bus-sub-{subject}")

    async def _run(self) -> None:
        while True:
            msg = await self.queue.get()
            try:
                await self.bus._deliver(self, msg)
            finally:
                self.queue.task_done()

    async def unsubscribe(self) -> None:
        """Stop this subscription."""
        if self in self.bus._subs:
            self.bus._subs.remove(self)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class MemoryBus(Bus):
    """Delivers in order per subscription, with retries, queue groups and replay from a bounded log."""

    def __init__(self, keep: int = 100_000) -> None:
        self._subs: list[_Sub] = []
        self._log: list[Message] = []
        self._keep = keep
        self._seq = itertools.count(1)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._rr: dict[str, int] = {}
        self._durable_pos: dict[str, int] = {}
        self.retry_delay = 0.01

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Wait for queued deliveries, then stop every subscription."""
        for sub in list(self._subs):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.queue.join(), timeout=5)
        for sub in list(self._subs):
            await sub.unsubscribe()

    async def ping(self) -> None:
        """Always reachable."""

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Deliver to every matching subscription (one member per queue group)."""
        if msg_id is not None:
            if msg_id in self._seen:
                return
            self._seen[msg_id] = None
            if len(self._seen) > self._keep:
                self._seen.popitem(last=False)
        msg = Message(subject=subject, data=data, headers=dict(headers or {}), msg_id=msg_id, seq=next(self._seq))
        self._log.append(msg)
        if len(self._log) > self._keep:
            del self._log[: len(self._log) - self._keep]
        self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        groups: dict[str, list[_Sub]] = {}
        for sub in self._subs:
            if not subject_matches(sub.subject, msg.subject):
                continue
            if sub.group is None:
                sub.queue.put_nowait(msg)
            else:
                groups.setdefault(f"{sub.group}|{sub.subject}", []).append(sub)
        for key, members in groups.items():
            i = self._rr.get(key, 0)
            self._rr[key] = i + 1
            members[i % len(members)].queue.put_nowait(msg)

    async def _deliver(self, sub: _Sub, msg: Message) -> None:
        for attempt in range(1, self.max_deliver + 1):
            delivered = Message(msg.subject, msg.data, msg.headers, msg.msg_id, attempt, msg.seq)
            try:
                await sub.handler(delivered)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self.max_deliver:
                    if self.dead_letter is not None:
                        await self.dead_letter(delivered, f"handler failed {attempt} times: {exc!r}")
                    return
                await asyncio.sleep(self.retry_delay * attempt)

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        queue: str | None = None,
        deliver_all: bool = False,
    ) -> Subscription:
        """Subscribe; deliver_all replays the kept log first."""
        sub = _Sub(self, subject, handler, queue)
        if deliver_all:
            for msg in self._log:
                if subject_matches(subject, msg.subject):
                    sub.queue.put_nowait(msg)
        self._subs.append(sub)
        return sub

    async def drain(self) -> None:
        """Wait until every queued message has been handled (for tests and shutdown)."""
        for _ in range(3):
            for sub in list(self._subs):
                await sub.queue.join()
            await asyncio.sleep(0)
