"""The durable outbox of a node and the sender loop that moves it to JetStream.

A message to send is a ``fed_outbox`` document written in the same store transaction as the change that
produced it (``Outbox.op`` returns that ``PutDoc``), so a message exists if and only if its cause was
committed. The sender loop takes waiting documents in order, numbers them per channel (the number is
stored before the first publish, so a retry re-sends the same number), publishes each with
``Nats-Msg-Id`` = message id and deletes the document only after JetStream's PubAck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.context import Context
from citybrain.federation.link import check_cancelled
from citybrain.federation.messages import FedMessage, encode
from citybrain.store.base import DeleteDoc, Doc, Op, PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)

OUTBOX = "fed_outbox"
STATE = "fed_state"
BATCH = 256

Publisher = Callable[[str, bytes, str], Awaitable[None]]  # (subject, data, msg id) -> returns after PubAck


class Outbox:
    """Waiting messages of this node, the per-channel sequence, and the loop that sends them."""

    def __init__(self, rt: CityBrain, subject_of: Callable[[FedMessage], str]) -> None:
        self.rt = rt
        self.subject_of = subject_of
        self._last_key = 0
        self._wake = asyncio.Event()
        self.sent = 0
        self.failures = 0
        self.last_error = ""

    def _key(self) -> str:
        key = max(time.time_ns(), self._last_key + 1)  # monotonic across restarts while the clock is sane
        self._last_key = key
        return f"{key:020d}"

    def op(self, kind: str, to: str, channel: str, payload: dict[str, Any], ctx: Context) -> PutDoc:
        """Return the PutDoc that queues a message; put it in the ops of the command that causes it."""
        msg = FedMessage(kind=kind, sender=self.rt.node_id, to=to, channel=channel, payload=payload,
                         context=ctx.to_dict(), created=self.rt.now())
        self.wake_soon()
        return PutDoc(OUTBOX, self._key(), {"channel": channel, "to": to, "kind": kind, "seq": 0,
                                            "msg": msgspec.to_builtins(msg)}, expect_version=0)

    def wake_soon(self) -> None:
        """Ask the sender loop to look again shortly (after the caller's transaction committed)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(0.005, self._wake.set)

    async def waiting(self, limit: int = 1000) -> list[Doc]:
        """Return waiting messages, oldest first."""
        return await self.rt.store.list_docs(OUTBOX, limit=limit)

    async def backlog(self) -> dict[str, int]:
        """Return the number of waiting messages per channel (one GROUP BY in the store)."""
        return await self.rt.store.count_docs(OUTBOX, "channel")

    async def _number(self, docs: list[Doc]) -> list[FedMessage]:
        """Give unnumbered messages the next sequence of their channel; store that before publishing."""
        last: dict[str, int] = {}
        ops: list[Op] = []
        msgs: list[FedMessage] = []
        for doc in docs:
            msg = msgspec.convert(doc.data["msg"], FedMessage)
            if doc.data["seq"] == 0:
                channel = doc.data["channel"]
                if channel not in last:
                    state = await self.rt.store.get_doc(STATE, channel)
                    last[channel] = state.data["seq"] if state else 0
                last[channel] += 1
                msg.seq = last[channel]
                data = dict(doc.data, seq=msg.seq, msg=msgspec.to_builtins(msg))
                ops.append(PutDoc(OUTBOX, doc.id, data, expect_version=doc.version))
            msgs.append(msg)
        ops += [PutDoc(STATE, ch, {"seq": seq}) for ch, seq in last.items()]
        if ops:
            await self.rt.store.apply(ops)
        return msgs

    async def send_once(self, publish: Publisher) -> int:
        """Publish one batch of waiting messages; return how many were acknowledged (raise if none could be)."""
        docs = await self.rt.store.list_docs(OUTBOX, limit=BATCH)
        if not docs:
            return 0
        msgs = await self._number(docs)
        results = await asyncio.gather(*(publish(self.subject_of(m), encode(m), m.id) for m in msgs),
                                       return_exceptions=True)
        done = [DeleteDoc(OUTBOX, d.id) for d, r in zip(docs, results, strict=True) if r is None]
        if done:
            await self.rt.store.apply(done)
            self.sent += len(done)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.failures += 1
            self.last_error = f"{type(errors[0]).__name__}: {errors[0]}"
            if not done:
                raise errors[0]
        return len(done)

    async def run(self, publish: Publisher, link_up: Callable[[], bool]) -> None:
        """Send forever: whenever the link is up and messages wait; back off after failures."""
        delay = 0.1
        while True:
            check_cancelled()
            if link_up():
                try:
                    if await self.send_once(publish):
                        delay = 0.1
                        continue  # more may be waiting
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("federation send failed (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.25)
