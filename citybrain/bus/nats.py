"""NATS JetStream adapter of the bus port.

Storage: one stream (default ``CITYBRAIN`` over ``cb.>``; name and subjects are configurable so several
nodes or test runs can share a server) with file storage and a duplicate window, so a ``msg_id`` sent
twice inside the window (the ``Nats-Msg-Id`` header) is stored once. ``publish`` returns after the
JetStream PubAck, i.e. once the message is stored.

Consumption: pull consumers driven by a continuous pull loop (pull requests with expiry and idle
heartbeats, refilled at half a batch, re-issued after a reconnect or a lost request). Consumers are

* durable when ``durable`` is given (the position survives process restarts),
* a shared durable consumer per (``queue``, subject) for work sharing (each message to one member),
* ephemeral otherwise (deleted on unsubscribe, re-created from the last seen position if the server
  loses it).

``deliver_all`` only matters when a consumer is created; an existing durable/queue consumer resumes from
its position. Messages fetched but not handled when a subscription stops are NAKed for prompt redelivery.

Failure handling differs by kind, which is the ordering/throughput trade-off:

* Single subscribers (no ``queue``) are *ordered*: messages of a batch are handled one at a time and a
  failing handler is retried in place (backoff ``retry_delay * n``, ack timer kept alive with ``+WPI``)
  until it succeeds or ``max_deliver`` deliveries were made, so a later message never overtakes an
  earlier one. The price is head-of-line blocking on a poison message. We do not use
  ``max_ack_pending=1`` (which would also keep order with server-side redelivery) because it costs a
  round trip per message.
* Work-sharing consumers (``queue``) are unordered: a failing message is NAKed with a delay and the
  server redelivers it, possibly to another member.

In both cases the delivery count comes from the server (plus in-place retries), and after
``max_deliver`` failed deliveries the message goes to ``dead_letter`` (if set) and is terminated. The
server-side ``max_deliver`` is one higher so a message whose handler crashed the process on its last
delivery (or whose dead-letter sink failed) still reaches the dead-letter sink once more.

Publishing returns after the PubAck. A publish that failed before reaching the stream (no responders) or
that carries a ``msg_id`` (so the stream dedupes a repeat) is retried until ``publish_timeout``; one
without ``msg_id`` whose ack timed out raises Unavailable, because only the caller can decide whether a
possible duplicate is acceptable. ``publish_many`` pipelines publishes (``window`` unacknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from citybrain.bus.base import Bus, Handler, Message, Subscription, subject_matches
from citybrain.bus.leases import KvLeases, Leases
from citybrain.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

_MSG_ID = "Nats-Msg-Id"
_ACK_PREFIX = "$JS.ACK."
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]+$")
# Errors that mean "the server did not answer / is not reachable right now".
_TRANSIENT = (
    nats.errors.TimeoutError,
    asyncio.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    ConnectionError,
    OSError,
)


def _consumer_name(name: str) -> str:
    """Return a valid JetStream consumer name for `name` (sanitised + hashed when needed)."""
    if _NAME_OK.match(name) and len(name) <= 200:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:150]}_{digest}"


def _parse_reply(reply: str) -> tuple[int, int]:
    """Return (num_delivered, stream_seq) from a JetStream ack subject (v1 or v2 format)."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[4]), int(tokens[5])
    return int(tokens[6]), int(tokens[7])


class _PullSub(Subscription):
    """One subscription: a pull consumer, its inbox and the worker handling messages."""

    def __init__(
        self,
        bus: NatsBus,
        subject: str,
        handler: Handler,
        consumer: str,
        *,
        ordered: bool,
        keep_consumer: bool,
        config: ConsumerConfig,
        resume_seq: int,
    ) -> None:
        self.bus = bus
        self.subject = subject
        self.handler = handler
        self.consumer = consumer
        self.ordered = ordered
        self.keep_consumer = keep_consumer
        self.config = config
        self.resume_seq = resume_seq  # where a re-created consumer starts
        self.batch = bus.batch if ordered else bus.queue_batch
        self._buf: deque[tuple[Msg, float]] = deque()
        self._current: tuple[Msg, float] | None = None
        self._wake = asyncio.Event()
        self._outstanding = 0  # messages asked for and not yet received
        self._last_traffic = time.monotonic()
        self._stopping = False
        self._drain = False
        self._force_pull = True
        self._check_consumer = False
        self._inbox = bus._client.new_inbox()
        self._nsub: NatsSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the inbox and start the worker."""
        self._nsub = await self.bus._client.subscribe(
            self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self._task = asyncio.create_task(self._run(), name=f"natsbus-{self.consumer}")
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"natsbus-ka-{self.consumer}")

    # --- receiving ---------------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        self._last_traffic = time.monotonic()
        if msg.reply.startswith(_ACK_PREFIX):
            self._outstanding = max(0, self._outstanding - 1)
            if self._stopping and not self._drain:
                with contextlib.suppress(Exception):
                    await msg.nak()
                return
            self._buf.append((msg, self._last_traffic))
            self._wake.set()
            return
        status = msg.headers.get("Status") if msg.headers else None
        if status == "100":  # idle heartbeat
            return
        if status in ("408", "409", "404"):  # a pull request ended
            left = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
            if left is not None and left.isdigit():
                self._outstanding = max(0, self._outstanding - int(left))
            else:
                self._outstanding = 0
            if status == "409":
                desc = " ".join(str(v) for k, v in (msg.headers or {}).items() if k != "Status")
                log.debug("pull request on %s ended: 409 %s", self.consumer, desc)
                if "Deleted" in desc:
                    self._check_consumer = True
            self._wake.set()

    async def _pull(self) -> None:
        """Ask for more messages when less than half a batch is held or in flight."""
        if self._stopping:
            return
        held = len(self._buf) + self._outstanding
        want = self.batch - held
        if not self._force_pull and want < max(1, self.batch // 2):
            return
        if want <= 0:
            return
        client = self.bus._nc
        if client is None or client.is_closed:
            return
        req = {
            "batch": want,
            "expires": int(self.bus.pull_expires * 1e9),
            "idle_heartbeat": int(self.bus.idle_heartbeat * 1e9),
        }
        subject = f"{self.bus._api_prefix}.CONSUMER.MSG.NEXT.{self.bus.stream}.{self.consumer}"
        await client.publish(subject, json.dumps(req).encode(), reply=self._inbox)
        self._outstanding += want
        self._force_pull = False
        self._last_traffic = time.monotonic()

    async def _recover(self) -> None:
        """The pull request went silent: make sure the consumer exists, then pull again."""
        self._outstanding = 0
        self._force_pull = True
        client = self.bus._nc
        if client is None or not client.is_connected:
            return
        try:
            await self.bus._jsm.consumer_info(self.bus.stream, self.consumer, timeout=2)
        except nats.js.errors.NotFoundError:
            await self.bus._recreate_consumer(self)
        except _TRANSIENT:
            return

    # --- worker ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._stopping and (not self._drain or not self._buf):
                    return
                if self._check_consumer:
                    self._check_consumer = False
                    await self._recover()
                await self._pull()
                if not self._buf:
                    if self._stopping:
                        return
                    self._wake.clear()
                    silent_for = time.monotonic() - self._last_traffic
                    limit = self.bus.idle_heartbeat * 3
                    if silent_for > limit:
                        await self._recover()
                        await self._pull()
                        silent_for = 0.0
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, limit - silent_for))
                    continue
                msg, received = self._buf.popleft()
                self._current = (msg, received)
                try:
                    await self._handle(msg)
                finally:
                    self._current = None
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble etc.: back off and carry on
                log.warning("bus subscription %s: %r; retrying in %.1fs", self.consumer, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._force_pull = True

    async def _handle(self, msg: Msg) -> None:
        bus = self.bus
        delivered, seq = _parse_reply(msg.reply)
        subject = bus.inner(msg.subject)
        hdrs = msg.headers
        msg_id = None
        if hdrs:
            hdrs = dict(hdrs)
            msg_id = hdrs.pop(_MSG_ID, None)
        if delivered > bus.max_deliver:  # the previous holder died on its last try
            await self._dead_letter(
                msg,
                Message(subject, msg.data, hdrs or {}, msg_id, delivered, seq),
                f"not acknowledged after {delivered - 1} deliveries",
            )
            return
        while True:
            message = Message(subject, msg.data, dict(hdrs) if hdrs else {}, msg_id, delivered, seq)
            try:
                await self.handler(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if delivered >= bus.max_deliver:
                    await self._dead_letter(msg, message, f"handler failed {delivered} times: {exc!r}")
                    return
                if not self.ordered:
                    with contextlib.suppress(*_TRANSIENT):
                        await msg.nak(delay=bus.retry_delay * delivered)
                    return
                if self._stopping and not self._drain:
                    with contextlib.suppress(*_TRANSIENT):
                        await msg.nak()
                    return
                await asyncio.sleep(bus.retry_delay * delivered)
                delivered += 1
                continue
            with contextlib.suppress(*_TRANSIENT):
                await msg.ack()
            if self.ordered or seq >= self.resume_seq:
                self.resume_seq = seq + 1
            return

    async def _dead_letter(self, msg: Msg, message: Message, reason: str) -> None:
        sink = self.bus.dead_letter
        if sink is not None:
            try:
                await sink(message, reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                # keep the message: the server redelivers it once more and we try the sink again
                log.exception("dead-letter sink failed for %s seq %d", message.subject, message.seq)
                if message.delivery <= self.bus.max_deliver:
                    with contextlib.suppress(*_TRANSIENT):
                        await msg.nak(delay=self.bus.retry_delay * message.delivery)
                    return
        with contextlib.suppress(*_TRANSIENT):
            await msg.term()
        if self.ordered or message.seq >= self.resume_seq:
            self.resume_seq = message.seq + 1

    async def _keep_alive(self) -> None:
        """Send +WPI for held messages older than a third of ack_wait so they are not redelivered."""
        period = max(0.2, self.bus.ack_wait / 3)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            held = list(self._buf)
            if self._current is not None:
                held.append(self._current)
            for msg, received in held:
                if now - received >= period:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    def poke(self) -> None:
        """Re-issue the pull request (after a reconnect the old one is gone)."""
        self._outstanding = 0
        self._force_pull = True
        self._wake.set()

    # --- stopping ----------------------------------------------------------------------------------

    async def _stop(self, *, drain: bool, grace: float) -> None:
        if self._stopping and self._task is None:
            return
        self._stopping = True
        self._drain = drain
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        # give back what we hold but did not handle, so the next holder gets it at once
        leftovers = list(self._buf)
        if self._current is not None:
            leftovers.insert(0, self._current)
        self._buf.clear()
        self._current = None
        for msg, _ in leftovers:
            with contextlib.suppress(Exception):
                await msg.nak()
        if self._nsub is not None:
            with contextlib.suppress(Exception):
                await self._nsub.unsubscribe()
            self._nsub = None
        if self in self.bus._subs:
            self.bus._subs.remove(self)
        if not self.keep_consumer:
            with contextlib.suppress(Exception):
                await self.bus._jsm.delete_consumer(self.bus.stream, self.consumer)

    async def unsubscribe(self) -> None:
        """Stop delivering; a durable or queue consumer keeps its position on the server."""
        await self._stop(drain=False, grace=self.bus.drain_timeout)


class NatsBus(Bus):
    """The bus on NATS JetStream: durable publish with dedupe, pull consumers, reconnect-safe loops."""

    def __init__(
        self,
        url: str,
        stream: str = "CITYBRAIN",
        *,
        subjects: list[str] | None = None,
        duplicate_window: float = 120.0,
        max_age: float | None = 7 * 24 * 3600.0,
        max_bytes: int | None = None,
        ack_wait: float = 10.0,  # a dead process's unacknowledged messages go to a survivor after this
        retry_delay: float = 0.5,
        batch: int = 256,
        queue_batch: int = 16,
        max_ack_pending: int = 1000,
        pull_expires: float = 5.0,
        idle_heartbeat: float = 1.0,
        publish_timeout: float = 5.0,
        drain_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        name: str = "citybrain",
        prefix: str = "cb",
        replicas: int = 1,
    ) -> None:
        self.url = url
        self.stream = stream
        if not re.match(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", prefix):
            raise ValueError(f"bus subject prefix {prefix!r}: use tokens of letters, digits, '_' and '-'")
        # the runtime speaks cb.…; on the wire every subject starts with `prefix` instead, so several
        # nodes, deployments or test runs can share one NATS server (each with its own stream)
        self.prefix = prefix
        self.replicas = max(1, replicas)  # copies of the stream and the lease bucket in a JetStream cluster
        self.subjects = list(subjects) if subjects else [f"{prefix}.>"]
        self.duplicate_window = duplicate_window
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.batch = batch
        self.queue_batch = queue_batch
        self.max_ack_pending = max_ack_pending
        self.pull_expires = pull_expires
        self.idle_heartbeat = idle_heartbeat
        self.publish_timeout = publish_timeout
        self.drain_timeout = drain_timeout
        self.connect_timeout = connect_timeout
        self.name = name
        self._nc: NatsClient | None = None
        self._js_ctx: JetStreamContext | None = None
        self._api_prefix = "$JS.API"
        self._subs: list[_PullSub] = []
        self._ok_subjects: set[str] = set()

    def outer(self, subject: str) -> str:
        """Return the wire subject of a runtime subject (cb.x → <prefix>.x)."""
        if self.prefix != "cb" and (subject == "cb" or subject.startswith("cb.")):
            return self.prefix + subject[2:]
        return subject

    def inner(self, subject: str) -> str:
        """Return the runtime subject of a wire subject (<prefix>.x → cb.x)."""
        if self.prefix != "cb" and subject.startswith(self.prefix + "."):
            return "cb" + subject[len(self.prefix):]
        return subject

    # --- connection --------------------------------------------------------------------------------

    @property
    def _client(self) -> NatsClient:
        if self._nc is None or self._nc.is_closed:
            raise Unavailable("bus is not connected")
        return self._nc

    @property
    def _jsm(self) -> JetStreamContext:
        if self._js_ctx is None:
            raise Unavailable("bus is not connected")
        return self._js_ctx

    async def connect(self) -> None:
        """Connect (reconnecting forever afterwards) and create or update the stream."""
        if self._nc is not None and not self._nc.is_closed:
            return

        async def on_error(exc: Exception) -> None:
            log.debug("nats: %r", exc)

        async def on_disconnect() -> None:
            if self._nc is not None and not self._nc.is_closed and not self._nc.is_draining:
                log.warning("bus disconnected from %s", self.url)

        async def on_reconnect() -> None:
            log.warning("bus reconnected to %s", self.url)
            for sub in list(self._subs):
                sub.poke()

        try:
            self._nc = await nats.connect(
                servers=[u.strip() for u in self.url.split(",") if u.strip()],  # any server of the cluster
                name=self.name,
                connect_timeout=int(max(1, self.connect_timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=1,  # the first connect fails fast; see below
                reconnect_time_wait=0.5,
                ping_interval=10,
                max_outstanding_pings=3,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
        except Exception as exc:
            self._nc = None
            raise Unavailable(f"cannot connect to NATS at {self.url}: {exc!r}") from exc
        # once connected, reconnect forever (nats-py reads this option on every reconnect attempt)
        self._nc.options["max_reconnect_attempts"] = -1
        self._js_ctx = self._nc.jetstream(timeout=self.publish_timeout)
        try:
            await self._ensure_stream()
        except nats.js.errors.APIError as exc:
            await self._nc.close()
            self._nc = None
            raise Conflict(f"cannot create stream {self.stream}: {exc}") from exc
        except _TRANSIENT as exc:
            await self._nc.close()
            self._nc = None
            raise Unavailable(f"JetStream at {self.url} is not available: {exc!r}") from exc

    async def _ensure_stream(self) -> None:
        """Create the stream, or update it so it covers our subjects with our settings."""
        jsm = self._jsm
        config = StreamConfig(
            name=self.stream,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age or 0,
            max_bytes=self.max_bytes if self.max_bytes is not None else -1,
            num_replicas=self.replicas,
        )
        for _ in range(3):
            try:
                info = await jsm.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                try:
                    await jsm.add_stream(config)
                    return
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code == 10058:  # created concurrently by someone else
                        continue
                    raise
            current = info.config
            merged = list(dict.fromkeys([*(current.subjects or []), *self.subjects]))
            if (
                merged != list(current.subjects or [])
                or (current.duplicate_window or 0) != self.duplicate_window
                or (current.max_age or 0) != (self.max_age or 0)
                or (current.num_replicas or 1) != self.replicas
            ):
                await jsm.update_stream(config.evolve(subjects=merged))
            return

    async def close(self) -> None:
        """Finish held messages (up to drain_timeout), stop subscriptions, drain and disconnect."""
        for sub in list(self._subs):
            await sub._stop(drain=True, grace=self.drain_timeout)
        nc, self._nc, self._js_ctx = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), timeout=self.drain_timeout)
            except Exception:
                with contextlib.suppress(Exception):
                    await nc.close()

    async def ping(self) -> None:
        """Raise Unavailable unless connected and the stream answers."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise Unavailable(f"bus not connected to {self.url}")
        try:
            await asyncio.wait_for(self._jsm.stream_info(self.stream), timeout=2.0)
        except Exception as exc:
            raise Unavailable(f"JetStream stream {self.stream} unavailable: {exc!r}") from exc

    async def leases(self, ttl: float) -> Leases:
        """Return leases kept in the key-value bucket <stream>_LEASES (its max age is the lease TTL)."""
        if self._leases is None:
            from nats.js.api import KeyValueConfig

            bucket = f"{self.stream}_LEASES"
            try:
                kv = await self._jsm.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                try:
                    kv = await self._jsm.create_key_value(KeyValueConfig(bucket=bucket, ttl=ttl, history=1,
                                                                             replicas=self.replicas))
                except nats.js.errors.BadRequestError:  # created concurrently by another process
                    kv = await self._jsm.key_value(bucket)
            status = await kv.status()
            held_for = status.ttl or ttl
            if abs(held_for - ttl) > 0.01:
                log.warning("lease bucket %s keeps leases %.1fs (lease_ttl says %.1fs); using %.1fs",
                            bucket, held_for, ttl, held_for)
            self._leases = KvLeases(kv, held_for)
        return self._leases

    async def delete_leases(self) -> None:
        """Delete the lease bucket (tests)."""
        with contextlib.suppress(Exception):
            await self._jsm.delete_key_value(f"{self.stream}_LEASES")

    @property
    def healthy(self) -> bool:
        """True while the connection to the server is up."""
        return self._nc is not None and self._nc.is_connected

    # --- publishing --------------------------------------------------------------------------------

    def _check_subject(self, subject: str) -> None:
        if subject in self._ok_subjects:
            return
        if not any(subject_matches(pattern, subject) for pattern in self.subjects):
            raise ValueError(f"subject {subject!r} is outside the bus subjects {self.subjects}")
        if len(self._ok_subjects) > 10_000:
            self._ok_subjects.clear()
        self._ok_subjects.add(subject)

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Publish and wait for the JetStream ack; retried until publish_timeout when safe (msg_id set)."""
        await self._publish_wire(self.outer(subject), data, msg_id=msg_id, headers=headers)

    async def republish(self, subject: str, data: bytes, *, msg_id: str) -> bool:
        """Publish a message that may be on the stream already; True if the server stored it as new, False if
        it was a duplicate of its id within the duplicate window (the event relay)."""
        wire = self.outer(subject)
        self._check_subject(wire)
        try:
            ack = await self._jsm.publish(wire, data, timeout=self.publish_timeout, headers={_MSG_ID: msg_id})
        except (nats.js.errors.APIError, *_TRANSIENT) as exc:
            raise Unavailable(f"republish on {subject} not acknowledged: {exc!r}") from exc
        return not bool(getattr(ack, "duplicate", False))

    async def _publish_wire(
        self, subject: str, data: bytes, *, msg_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self._check_subject(subject)
        hdrs: dict[str, str] | None = dict(headers) if headers else None
        if msg_id is not None:
            hdrs = hdrs or {}
            hdrs[_MSG_ID] = msg_id
        start = time.monotonic()
        try:  # the fast path: one attempt
            await self._jsm.publish(subject, data, timeout=self.publish_timeout, headers=hdrs)
            return
        except nats.js.errors.NoStreamResponseError:
            pass  # nobody stored it, so trying again cannot duplicate
        except nats.js.errors.APIError as exc:
            if exc.code != 503:
                raise Unavailable(f"publish on {subject} rejected: {exc}") from exc
        except _TRANSIENT as exc:
            if msg_id is None:  # it may have been stored: only the caller can decide to send it again
                raise Unavailable(f"publish on {subject} not acknowledged: {exc!r}") from exc
        await self._publish_retrying(subject, data, hdrs, start + self.publish_timeout, msg_id is not None)

    async def _publish_retrying(
        self, subject: str, data: bytes, hdrs: dict[str, str] | None, deadline: float, idempotent: bool
    ) -> None:
        """Retry a publish that is safe to repeat (dedupe id, or nothing stored) until `deadline`."""
        delay = 0.05
        while True:
            if time.monotonic() + delay >= deadline:
                raise Unavailable(f"publish on {subject} not acknowledged within {self.publish_timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                left = max(0.1, deadline - time.monotonic())
                await self._jsm.publish(subject, data, timeout=left, headers=hdrs)
                return
            except nats.js.errors.NoStreamResponseError:
                continue
            except nats.js.errors.APIError as exc:
                if exc.code != 503:
                    raise Unavailable(f"publish on {subject} rejected: {exc}") from exc
            except _TRANSIENT as exc:
                if not idempotent:
                    raise Unavailable(f"publish on {subject} not acknowledged: {exc!r}") from exc

    async def publish_many(self, messages: Iterable[Message], *, window: int = 1000) -> None:
        """Publish many messages pipelined (up to `window` unacknowledged); return when all are stored."""
        js = self._jsm
        batch: list[tuple[Message, asyncio.Future[Any]]] = []
        for message in messages:
            message = Message(self.outer(message.subject), message.data, message.headers, message.msg_id)
            self._check_subject(message.subject)
            hdrs: dict[str, str] | None = dict(message.headers) if message.headers else None
            if message.msg_id is not None:
                hdrs = hdrs or {}
                hdrs[_MSG_ID] = message.msg_id
            try:
                fut = await js.publish_async(message.subject, message.data, headers=hdrs)
            except _TRANSIENT as exc:
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(exc)
            batch.append((message, fut))
            if len(batch) >= window:
                await self._settle(batch)
                batch = []
        if batch:
            await self._settle(batch)

    async def _settle(self, batch: list[tuple[Message, asyncio.Future[Any]]]) -> None:
        """Wait for the acks of a pipelined batch; re-publish failures one by one (safe with msg_id)."""
        futures = [fut for _, fut in batch]
        done, pending = await asyncio.wait(futures, timeout=self.publish_timeout)
        for fut in pending:
            fut.cancel()
        for message, fut in batch:
            if fut.cancelled() or fut.exception() is not None:
                exc = None if fut.cancelled() else fut.exception()
                if message.msg_id is None and not isinstance(exc, nats.js.errors.NoStreamResponseError):
                    raise Unavailable(f"publish on {message.subject} not acknowledged: {exc!r}")
                await self._publish_wire(
                    message.subject, message.data, msg_id=message.msg_id, headers=message.headers or None
                )

    # --- subscribing -------------------------------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        queue: str | None = None,
        deliver_all: bool = False,
    ) -> Subscription:
        """Subscribe through a pull consumer (durable, shared per queue, or ephemeral)."""
        subject = self.outer(subject)
        client = self._client
        jsm = self._jsm
        keep = durable is not None or queue is not None
        if durable is not None:
            name = _consumer_name(durable)
        elif queue is not None:
            name = _consumer_name(f"q_{queue}_{hashlib.sha1(subject.encode()).hexdigest()[:10]}")
        else:
            name = client.new_inbox().rsplit(".", 1)[-1]
        ordered = queue is None
        config = ConsumerConfig(
            name=name,
            durable_name=name if keep else None,
            deliver_policy=DeliverPolicy.ALL if deliver_all else DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver + 1,
            filter_subject=subject,
            max_ack_pending=self.max_ack_pending,
            inactive_threshold=None if keep else max(30.0, 10 * self.idle_heartbeat),
        )
        info: ConsumerInfo | None = None
        try:
            if keep:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    info = await jsm.consumer_info(self.stream, name)
                if info is not None and info.config.filter_subject != subject:
                    raise Conflict(
                        f"consumer {name!r} already exists for subject {info.config.filter_subject!r}",
                        field="durable",
                    )
            if info is None:
                try:
                    info = await jsm.add_consumer(self.stream, config)
                except nats.js.errors.BadRequestError as exc:
                    if not keep or exc.err_code not in (10013, 10148, 10105):
                        raise ValueError(f"cannot subscribe to {subject!r}: {exc}") from exc
                    info = await jsm.consumer_info(self.stream, name)  # created concurrently
        except _TRANSIENT as exc:
            raise Unavailable(f"cannot create consumer on {self.stream}: {exc!r}") from exc
        resume = info.ack_floor.stream_seq + 1 if info.ack_floor is not None else 1
        sub = _PullSub(
            self,
            subject,
            handler,
            name,
            ordered=ordered,
            keep_consumer=keep,
            config=config,
            resume_seq=resume,
        )
        self._subs.append(sub)
        await sub.start()
        return sub

    async def _recreate_consumer(self, sub: _PullSub) -> None:
        """Re-create a consumer the server lost (e.g. an ephemeral one across a restart)."""
        config = sub.config.evolve(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=sub.resume_seq
        )
        try:
            await self._jsm.add_consumer(self.stream, config)
            log.warning("re-created consumer %s from stream seq %d", sub.consumer, sub.resume_seq)
        except nats.js.errors.BadRequestError:
            pass  # another member re-created it first

    # --- test helpers ------------------------------------------------------------------------------

    async def purge(self) -> None:
        """Remove every message from the stream (tests)."""
        await self._jsm.purge_stream(self.stream)

    async def delete_stream(self) -> None:
        """Stop this bus's subscriptions, then delete the stream and its consumers (tests)."""
        for sub in list(self._subs):
            await sub._stop(drain=False, grace=self.drain_timeout)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._jsm.delete_stream(self.stream)
