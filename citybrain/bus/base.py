"""Bus port: publish messages on dotted subjects, subscribe with at-least-once delivery.

Subjects use NATS syntax: tokens separated by '.', '*' matches one token, '>' the rest.
A subscription with a `queue` name shares work: each message goes to one member of the queue.
A subscription with a `durable` name remembers what it acknowledged (the NATS adapter survives a
restart; the in-process adapter for the life of the process). A handler that returns acknowledges the
message; a handler that raises gets it again (up to max_deliver times, then it is dead-lettered).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from citybrain.bus.leases import Leases, MemoryLeases


@dataclass
class Message:
    """One delivered message."""

    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    msg_id: str | None = None
    delivery: int = 1  # 1 on first delivery, then 2, 3 … on redelivery
    seq: int = 0  # position in the stream


Handler = Callable[[Message], Awaitable[None]]
DeadLetterSink = Callable[[Message, str], Awaitable[None]]


class Subscription(ABC):
    """A live subscription; stop it with unsubscribe()."""

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Stop delivering (a durable subscription keeps its position for later)."""


def subject_matches(pattern: str, subject: str) -> bool:
    """Tell whether a NATS-style `pattern` ('*' one token, '>' the rest) matches `subject`."""
    pt = pattern.split(".")
    st = subject.split(".")
    for i, token in enumerate(pt):
        if token == ">":
            return len(st) > i
        if i >= len(st):
            return False
        if token != "*" and token != st[i]:
            return False
    return len(pt) == len(st)


class Bus(ABC):
    """The bus contract."""

    max_deliver: int = 5
    dead_letter: DeadLetterSink | None = None  # the runtime sets this to keep undeliverable messages
    _leases: Leases | None = None

    @abstractmethod
    async def connect(self) -> None:
        """Connect (and create streams where the engine needs them)."""

    @abstractmethod
    async def close(self) -> None:
        """Drain subscriptions and disconnect."""

    @abstractmethod
    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Publish durably; return when the bus has accepted it. Same msg_id twice = stored once."""

    async def publish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages in order (subject, data, msg_id, headers of each); adapters pipeline."""
        for m in messages:
            await self.publish(m.subject, m.data, msg_id=m.msg_id, headers=m.headers or None)

    @abstractmethod
    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        queue: str | None = None,
        deliver_all: bool = False,
    ) -> Subscription:
        """Deliver messages on `subject` to `handler`. deliver_all: start from the oldest kept message."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise Unavailable when the bus cannot be reached."""

    async def leases(self, ttl: float) -> Leases:
        """Return the node's leases (in-process here; adapters for shared servers override this)."""
        if self._leases is None:
            self._leases = MemoryLeases(ttl)
        return self._leases

    @property
    def healthy(self) -> bool:
        """True while the bus is connected."""
        return True
