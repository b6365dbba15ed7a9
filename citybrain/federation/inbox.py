"""The receiver: pull messages from a durable JetStream consumer and apply each exactly once, in order.

Per sender it keeps the last applied sequence (``fed_peer`` documents). A message with the next sequence
is applied: the handler's writes, an ``fed_inbox`` record of the message id and the new sequence commit
in one transaction, and only then is the message acknowledged. A lower sequence (a redelivery) is
acknowledged and dropped; a higher one is held, unacknowledged, until the gap is filled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from citybrain.events import Event
from citybrain.federation.link import Link, check_cancelled
from citybrain.federation.messages import FedMessage, decode
from citybrain.store.base import AppendEvent, Op, PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)

INBOX = "fed_inbox"
PEERS = "fed_peer"
MessageHandler = Callable[[FedMessage], Awaitable[list[Op] | None]]


class Receiver:
    """Applies one consumer's messages: idempotent, ordered per sender, durable before ack."""

    def __init__(self, rt: CityBrain, link: Link, subject: str, durable: str,
                 handler_of: Callable[[str], MessageHandler | None]) -> None:
        self.rt, self.link, self.subject, self.durable = rt, link, subject, durable
        self.handler_of = handler_of
        self.last: dict[str, int] = {}
        self.held: dict[str, dict[int, tuple[FedMessage, Msg]]] = {}
        self.applied = 0  # by this process
        self.order = 0  # messages the node applied so far: the apply order `n` of the next one continues it
        self.duplicates = 0
        self.out_of_order = 0
        self.unhandled = 0

    async def load(self) -> None:
        """Read the last applied sequence of every sender and how many messages the node applied (this process
        may take the receiver over from another one: its apply order continues theirs)."""
        for doc in await self.rt.store.list_docs(PEERS, limit=100000):
            self.last[doc.id] = int(doc.data["seq"])
        self.held.clear()  # deliveries of an earlier subscription: redelivered to this one
        self.order = sum((await self.rt.store.count_docs(INBOX, "sender")).values())

    def stats(self) -> dict[str, Any]:
        """Return counters for listings."""
        return {"applied": self.applied, "duplicates": self.duplicates, "out_of_order": self.out_of_order,
                "held": sum(len(h) for h in self.held.values()), "unhandled": self.unhandled,
                "last_seq": dict(self.last)}

    async def run(self) -> None:
        """Fetch and apply while the link is up; re-subscribe after every reconnect."""
        while True:
            check_cancelled()
            if not self.link.up or self.link.js is None:
                await asyncio.sleep(0.1)
                continue
            try:
                config = ConsumerConfig(durable_name=self.durable, deliver_policy=DeliverPolicy.ALL,
                                        ack_policy=AckPolicy.EXPLICIT, ack_wait=5, max_ack_pending=20000,
                                        filter_subject=self.subject)
                sub = await self.link.js.pull_subscribe(self.subject, durable=self.durable,
                                                        stream=self.link.stream, config=config)
                while self.link.up:
                    check_cancelled()
                    try:
                        msgs = await sub.fetch(batch=256, timeout=0.5)
                    except nats.errors.TimeoutError:
                        continue
                    await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("federation receive on %s interrupted: %s", self.subject, exc)
                await asyncio.sleep(0.3)

    async def handle(self, msgs: list[Msg]) -> None:
        """Sort a fetched batch into duplicates, next-in-order and held; apply what is in order."""
        fresh: set[tuple[str, int]] = set()
        for raw in msgs:
            try:
                msg = decode(raw.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self.rt.dead_letter(f"federation:{raw.subject}", f"undecodable message: {exc}", raw.data)
                await raw.ack()
                continue
            if msg.seq <= self.last.get(msg.sender, 0):
                self.duplicates += 1  # applied before: a redelivery
                await raw.ack()
                continue
            held = self.held.setdefault(msg.sender, {})
            if msg.seq in held:
                self.duplicates += 1  # redelivered while held: keep the newest delivery to ack
            else:
                fresh.add((msg.sender, msg.seq))
            held[msg.seq] = (msg, raw)
        ready: list[tuple[FedMessage, Msg]] = []
        for sender, held in self.held.items():
            nxt = self.last.get(sender, 0) + 1
            while nxt in held:
                ready.append(held.pop(nxt))
                nxt += 1
            self.out_of_order += sum(1 for seq in held if (sender, seq) in fresh)
        if ready:
            await self.apply(ready)

    async def _ops_of(self, msg: FedMessage, n: int) -> tuple[list[Op], Event]:
        """Return the writes that apply a message and the event recording it (in those writes)."""
        handler = self.handler_of(msg.kind)
        ops: list[Op] = []
        if handler is None:
            self.unhandled += 1
            await self.rt.dead_letter(f"federation:{msg.sender}", f"no handler for kind {msg.kind!r}",
                                      msgspec.json.encode(msg))
        else:
            ops = list(await handler(msg) or [])
        ops.append(PutDoc(INBOX, msg.id, {"sender": msg.sender, "seq": msg.seq, "kind": msg.kind,
                                          "channel": msg.channel, "applied_at": self.rt.now(), "n": n},
                          expect_version=0))
        event = Event(type=f"federation.{msg.kind}", time=self.rt.now(), context=msg.ctx(),
                      data={"message": msg.id, "sender": msg.sender, "seq": msg.seq, "payload": msg.payload})
        ops.append(AppendEvent(event))
        return ops, event

    async def apply(self, ready: list[tuple[FedMessage, Msg]]) -> None:
        """Commit the in-order messages (one transaction; one per message if that fails), then ack."""
        ops: list[Op] = []
        events: list[Event] = []
        last = dict(self.last)
        for i, (msg, _) in enumerate(ready):
            more, event = await self._ops_of(msg, self.order + 1 + i)
            ops += more
            events.append(event)
            last[msg.sender] = msg.seq
        ops += [PutDoc(PEERS, s, {"seq": q}) for s, q in last.items() if q != self.last.get(s)]
        try:
            await self.rt.store.apply(ops)
        except Exception:
            for msg, raw in ready:  # find the one that fails, keep order: stop at it
                await self._apply_one(msg, raw)
            return
        self.last = last
        self.applied += len(ready)
        self.order += len(ready)
        for (_, raw), event in zip(ready, events, strict=True):
            await raw.ack()
            await self._publish(event)

    async def _apply_one(self, msg: FedMessage, raw: Msg) -> None:
        existing = await self.rt.store.get_doc(INBOX, msg.id)
        event: Event | None = None
        if existing is None:
            ops, event = await self._ops_of(msg, self.order + 1)
            ops.append(PutDoc(PEERS, msg.sender, {"seq": msg.seq}))
            try:
                await self.rt.store.apply(ops)
            except Exception as exc:  # a message whose effect cannot be stored: keep it, skip its effect
                await self.rt.dead_letter(f"federation:{msg.sender}", f"apply failed: {exc}", msgspec.json.encode(msg))
                await self.rt.store.apply([PutDoc(PEERS, msg.sender, {"seq": msg.seq}),
                                           PutDoc(INBOX, msg.id, {"sender": msg.sender, "seq": msg.seq,
                                                                  "kind": msg.kind, "failed": str(exc)})])
                event = None  # not recorded: nothing to announce
            self.applied += 1
            self.order += 1
        else:
            self.duplicates += 1
        self.last[msg.sender] = msg.seq  # a duplicate was announced by whoever applied it (or by the relay)
        await raw.ack()
        if event is not None:
            await self._publish(event)

    async def _publish(self, event: Event) -> None:
        """Publish the recorded event itself (same id), so that the event relay's copy is a duplicate the bus
        drops; a fresh event would reach every follower twice."""
        try:
            await self.rt.publish(event)
        except Exception as exc:
            log.debug("could not publish %s: %s", event.type, exc)
