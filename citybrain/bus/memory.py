"""In-process adapter of the bus port (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from citybrain.bus.base import Bus, Handler, Message, Subscription, subject_matches
from citybrain.errors import Conflict

log = logging.getLogger(__name__)


@dataclass
class _Position:
    """What a durable (or queue-group) consumer has handled, so a later subscriber resumes there."""

    subject: str
    after: int  # every kept message with seq <= after counts as handled
    done: set[int] = field(default_factory=set)  # handled seqs above `after`

    def pending(self, msg: Message) -> bool:
        """Tell whether `msg` is for this position and not handled yet."""
        return (
            msg.seq > self.after and msg.seq not in self.done and subject_matches(self.subject, msg.subject)
        )


class _Sub(Subscription):
    def __init__(
        self, bus: MemoryBus, subject: str, handler: Handler, group: str | None, position: str | None
    ) -> None:
        self.bus = bus
        self.subject = subject
        self.handler = handler
        self.group = group
        self.position = position  # key into bus._positions, or None
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.current: Message | None = None
        self.task = asyncio.create_task(self._run(), name=f"bus-sub-{subject}")

    async def _run(self) -> None:
        while True:
            msg = await self.queue.get()
            self.current = msg  # stays set if we are cancelled mid-delivery, so unsubscribe can hand it on
            try:
                await self.bus._deliver(self, msg)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing dead-letter sink must not kill the subscription
                log.exception("bus delivery of %s seq %d failed", msg.subject, msg.seq)
            self.current = None
            self.queue.task_done()

    async def unsubscribe(self) -> None:
        """Stop this subscription; queue-group work it held goes to the remaining members."""
        if self not in self.bus._subs:
            return
        self.bus._subs.remove(self)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        left: list[Message] = []
        if self.current is not None:
            left.append(self.current)
            self.current = None
            self.queue.task_done()
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
            self.queue.task_done()
        if self.group is not None:
            for msg in left:
                self.bus._dispatch_group(self.group, self.subject, msg)


class MemoryBus(Bus):
    """Delivers in order per subscription, with retries, queue groups and replay from a bounded log.

    Durable names and queue groups keep their position (handled messages) for the life of the process:
    a durable subscriber that comes back gets what was published meanwhile, and so does a queue group
    whose members all left. deliver_all only matters when such a position is first created.
    """

    def __init__(self, keep: int = 100_000, keep_bytes: int = 16 * 1024 * 1024) -> None:
        self._subs: list[_Sub] = []
        self._log: list[Message] = []
        self._keep = keep
        # the log is also bounded by size: observation batches are kilobytes each, so 100,000 of them
        # would hold ~200 MB for replays nobody asked for (seen as steady growth in the soak test)
        self._keep_bytes = keep_bytes
        self._log_bytes = 0
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._rr: dict[str, int] = {}
        self._positions: dict[str, _Position] = {}
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
        self._last_seq = next(self._seq)
        msg = Message(
            subject=subject, data=data, headers=dict(headers or {}), msg_id=msg_id, seq=self._last_seq
        )
        self._log.append(msg)
        self._log_bytes += len(data)
        if len(self._log) > self._keep + max(1, self._keep // 10) or \
                self._log_bytes > self._keep_bytes + self._keep_bytes // 10:
            self._trim()
        self._dispatch(msg)

    def _trim(self) -> None:
        drop = max(0, len(self._log) - self._keep)
        size = self._log_bytes - sum(len(m.data) for m in self._log[:drop])
        while drop < len(self._log) - 1 and size > self._keep_bytes:
            size -= len(self._log[drop].data)
            drop += 1
        del self._log[:drop]
        self._log_bytes = size
        floor = self._log[0].seq - 1 if self._log else self._last_seq
        for pos in self._positions.values():
            if pos.after < floor:
                pos.after = floor
                pos.done = {s for s in pos.done if s > floor}

    def _dispatch(self, msg: Message) -> None:
        groups: dict[str, tuple[str, str]] = {}
        for sub in self._subs:
            if not subject_matches(sub.subject, msg.subject):
                continue
            if sub.group is None:
                sub.queue.put_nowait(msg)
            else:
                groups.setdefault(f"{sub.group}|{sub.subject}", (sub.group, sub.subject))
        for group, subject in groups.values():
            self._dispatch_group(group, subject, msg)

    def _dispatch_group(self, group: str, subject: str, msg: Message) -> None:
        members = [s for s in self._subs if s.group == group and s.subject == subject]
        if not members:
            return  # kept in the log; the group's position replays it to the next member
        key = f"{group}|{subject}"
        i = self._rr.get(key, 0)
        self._rr[key] = i + 1
        members[i % len(members)].queue.put_nowait(msg)

    async def _deliver(self, sub: _Sub, msg: Message) -> None:
        for attempt in range(1, max(1, self.max_deliver) + 1):
            delivered = Message(msg.subject, msg.data, dict(msg.headers), msg.msg_id, attempt, msg.seq)
            try:
                await sub.handler(delivered)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt >= self.max_deliver:
                    self._handled(sub, msg)
                    if self.dead_letter is not None:
                        await self.dead_letter(delivered, f"handler failed {attempt} times: {exc!r}")
                    return
                await asyncio.sleep(self.retry_delay * attempt)
        self._handled(sub, msg)

    def _handled(self, sub: _Sub, msg: Message) -> None:
        if sub.position is not None:
            pos = self._positions.get(sub.position)
            if pos is not None and msg.seq > pos.after:
                pos.done.add(msg.seq)

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        queue: str | None = None,
        deliver_all: bool = False,
    ) -> Subscription:
        """Subscribe; a durable/queue position resumes, else deliver_all replays the kept log first."""
        key = f"durable:{durable}" if durable is not None else (f"queue:{queue}|{subject}" if queue else None)
        group = queue if queue is not None else (f"~durable:{durable}" if durable is not None else None)
        sub = _Sub(self, subject, handler, group, key)
        replay: list[Message] = []
        if key is None:
            if deliver_all:
                replay = [m for m in self._log if subject_matches(subject, m.subject)]
        else:
            pos = self._positions.get(key)
            if pos is None:
                pos = _Position(subject, after=0 if deliver_all else self._last_seq)
                self._positions[key] = pos
            elif pos.subject != subject:
                sub.task.cancel()
                raise Conflict(f"durable {durable!r} is bound to subject {pos.subject!r}", field="durable")
            live = [s for s in self._subs if s.position == key]
            if not live:  # nobody holds the group's/durable's backlog: replay it
                replay = [m for m in self._log if pos.pending(m)]
        for msg in replay:
            sub.queue.put_nowait(msg)
        self._subs.append(sub)
        return sub

    async def drain(self) -> None:
        """Wait until every queued message has been handled (for tests and shutdown)."""
        for _ in range(3):
            for sub in list(self._subs):
                await sub.queue.join()
            await asyncio.sleep(0)
