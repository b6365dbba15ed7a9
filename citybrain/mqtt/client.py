"""The MQTT client: FIWARE IoT Agent JSON topics → observation ingest, QoS 1 acknowledged after commit.

Topics: `/<apikey>/<device_id>/attrs` with a JSON object of measurements, and `/<apikey>/<device_id>/attrs/<attr>`
with one value. Messages are taken in batches (whatever has arrived, up to `batch`), stored with one ingest
call, and only then acknowledged, so the broker redelivers anything citybrain had not stored. `?prefix=a/b`
puts the topics under a root (`a/b/<apikey>/<device_id>/attrs`), for a broker shared with others.

Several processes of one node share the node's named sessions (see `node_sessions`): each session is
held by one process at a time, following a pipeline partition lease, so a killed process's unacknowledged
messages are resent by the broker to the process that takes its partitions over. A measurement stored
again after such a resend keeps one history row when it carries its time (`TimeInstant`/`timestamp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import secrets
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from citybrain.errors import ValidationError
from citybrain.mqtt.devices import DeviceRegistry
from citybrain.mqtt.wire import Connection, ConnectOptions, MqttError, Publish
from citybrain.store import AddDeadLetter

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)
TOPICS = ("/+/+/attrs", "/+/+/attrs/+", "+/+/attrs", "+/+/attrs/+")
RECEIVE_MAXIMUM = 65535  # QoS 1 messages the broker may have in flight to us (acknowledged after commit)
SESSION_EXPIRY = 7 * 24 * 3600  # seconds a named session (…?client_id=, a node's sessions) outlives a disconnection
SESSIONS = 8  # named sessions a node of several processes spreads its device traffic over (…?sessions=)
TAKEN_OVER = 0x8E  # DISCONNECT reason: another connection with our client id took the session over


def share_group(settings: Any) -> str:
    """Return the shared-subscription group of a node's processes (node, stream and subject prefix)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"citybrain-{settings.node_id}-{settings.bus_stream}-{settings.bus_prefix}")


def shared_bus(settings: Any) -> bool:
    """Tell whether the node may have several processes (a bus other than the in-process one)."""
    return settings.bus not in ("memory", "", "memory://")


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query, keep_blank_values=True)


def topic_prefix(url: str) -> str:
    """Return the topic root of …?prefix=a/b ('' for none): device topics are then a/b/<apikey>/<device>/attrs."""
    prefix = _query(url).get("prefix", [""])[0].strip("/")
    if prefix and ("+" in prefix or "#" in prefix or prefix.startswith("$") or "//" in prefix):
        raise ValueError(f"mqtt: prefix={prefix!r} must be a plain topic (no wildcards, no $, no empty levels)")
    return prefix


def topic_filters(prefix: str) -> tuple[str, ...]:
    """Return the topic filters device ingest subscribes to (under a prefix, if any)."""
    return TOPICS if not prefix else (f"{prefix}/+/+/attrs", f"{prefix}/+/+/attrs/+")


def client_options(url: str, share: str = "") -> ConnectOptions:
    """Return the connection options of mqtt[s]://user:pass@host:port?client_id=…&ca=…&share=…&prefix=…&expiry=…

    share: the MQTT 5 shared-subscription group (`$share/<group>/<filter>`): the processes of one node
    subscribe in one group, so the broker hands each device message to one of them instead of all (the URL's
    `share=` overrides it; `share=` empty subscribes plainly). prefix: the topic root device topics are under.
    expiry: seconds a named session outlives a disconnection (default 7 days)."""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"mqtt: {url!r} is not an mqtt:// or mqtts:// URL")
    tls = u.scheme in ("mqtts", "ssl")
    query = _query(url)
    # MQTT 5 lets the client set Receive Maximum: Mosquitto then keeps that many QoS 1 messages in flight to
    # citybrain (MQTT 3.1.1: its max_inflight_messages, 20 by default). Since we acknowledge only after the
    # store commit, a window of 20 caps a batch at 20 messages, and messages beyond Mosquitto's
    # max_queued_messages (1000) are dropped by the broker while citybrain commits.
    opts = ConnectOptions(host=u.hostname or "127.0.0.1", port=u.port or (8883 if tls else 1883),
                          client_id=f"citybrain-{secrets.token_hex(6)}", receive_maximum=RECEIVE_MAXIMUM,
                          subscriptions=[])
    group = query["share"][0] if "share" in query else share
    opts.subscriptions = [(f"$share/{group}/{t}" if group else t, 1) for t in topic_filters(topic_prefix(url))]
    if u.username:
        opts.username = unquote(u.username)
        opts.password = unquote(u.password or "")
    if "client_id" in query:
        opts.client_id = query["client_id"][0]
        # a named session keeps QoS 1 messages while citybrain is down (MQTT 5: clean start off + expiry)
        opts.clean_start = False
        opts.session_expiry = _expiry(query)
    if tls:
        opts.tls = ssl.create_default_context(cafile=query["ca"][0] if "ca" in query else None)
    return opts


def _int_param(query: dict[str, list[str]], name: str, default: int, top: int, what: str) -> int:
    """Return the URL parameter `name` as an integer from 1 to `top`, or raise ValueError naming it."""
    try:
        value = int(query.get(name, [str(default)])[0])
    except ValueError:
        value = 0
    if not 1 <= value <= top:
        raise ValueError(f"mqtt: {name}= must be {what} from 1 to {top}")
    return value


def _expiry(query: dict[str, list[str]]) -> int:
    return _int_param(query, "expiry", SESSION_EXPIRY, 0xFFFFFFFF, "a number of seconds")


def node_sessions(url: str, settings: Any) -> dict[int, ConnectOptions]:
    """Return the named sessions the processes of a node share, by slot ({} for one process on its own).

    With a shared bus and a share group, the node's device traffic goes to `sessions` (default 8) named,
    persistent MQTT sessions `<group>-<k>`, all in the node's group (`client_id=` is not used: the names come
    from shared configuration only). Slot k is held by the process that owns pipeline partition
    k mod partitions, so a session moves with that lease: a
    survivor that takes a dead process's partitions resumes its sessions, and the broker resends what the
    dead process had not acknowledged and what queued for the session meanwhile."""
    base = client_options(url, share=share_group(settings) if shared_bus(settings) else "")
    query = _query(url)
    group = query["share"][0] if "share" in query else share_group(settings)
    if not shared_bus(settings) or not group:
        return {}
    count = _int_param(query, "sessions", SESSIONS, 1024, "a number")
    # named from shared configuration only (a per-process client_id= would leave sessions nobody resumes)
    expiry = _expiry(query)
    return {k: dataclasses.replace(base, client_id=f"{group}-{k}", clean_start=False, session_expiry=expiry)
            for k in range(count)}


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """Return (apikey, device_id, attr or None) of an IoT Agent JSON topic, or raise ValidationError."""
    parts = topic.strip("/").split("/")
    if len(parts) in (3, 4) and parts[2] == "attrs" and parts[0] and parts[1]:
        return parts[0], parts[1], parts[3] if len(parts) == 4 else None
    raise ValidationError(f"topic {topic!r} is not /<apikey>/<device_id>/attrs[/<attr>]", field="topic")


class Session:
    """One MQTT connection of the device ingest: (re)connect with backoff, take batches, store, acknowledge.

    The loop: take every message that has arrived (up to `batch`), submit them with one ingest call
    (committed), then acknowledge the whole batch with one write. `stop()` finishes the batch in flight,
    acknowledges it and disconnects; what was received after it is not acknowledged, so the broker delivers
    it again to the session's next connection (a named session) when it comes back."""

    def __init__(self, ingest: DeviceIngest, options: ConnectOptions, name: str) -> None:
        self.ingest = ingest
        self.rt = ingest.rt
        self.options = options
        self.name = name
        self.connected = asyncio.Event()
        self.stopping = False
        self._stop = asyncio.Event()
        self.conn: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self.resumed = 0  # connections that found the session at the broker (session present)

    def start(self) -> None:
        """Start the connection task."""
        self.task = self.rt.spawn(self._run(), name=f"mqtt-{self.name}")

    async def stop(self, wait: float) -> None:
        """Finish and acknowledge the batch in flight (waiting up to `wait` seconds), then disconnect.

        A batch not stored by then stays unacknowledged: the connection is dropped and the broker gives the
        messages to the session's next connection (the store keeps a reading stored twice once)."""
        self.stopping = True
        self._stop.set()
        if self.conn is not None:
            self.conn.pause()
            self.conn.interrupt()
        task = self.task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                log.warning("mqtt: session %s: the batch in flight was not stored within %.1f s; dropping the "
                            "connection unacknowledged", self.name, wait)
                if self.conn is not None:
                    self.conn.abort()
                task.cancel()
                await asyncio.wait({task}, timeout=5)
        self._connected(False)

    def _connected(self, on: bool) -> None:
        if on:
            self.connected.set()
        else:
            self.connected.clear()
        self.ingest.connection_changed()

    async def _run(self) -> None:
        delay = 0.5
        while not self.stopping:
            conn: Connection | None = None
            pause = 0.0
            try:
                conn = await Connection.open(self.options)
                self.conn = conn
                if self.stopping:
                    break
                if conn.session_present:
                    self.resumed += 1
                    self.ingest.resumed += 1
                    log.info("mqtt: resumed session %s", self.options.client_id)
                self._connected(True)
                delay = 0.5
                await self._consume(conn)
            except (MqttError, OSError) as exc:
                self._connected(False)
                if self.stopping:
                    break
                if isinstance(exc, MqttError) and exc.reason == TAKEN_OVER:
                    # another process connected with this session's id (it holds the slot's lease now, or we
                    # lost it unnoticed): do not take it back at once; our lease round decides in the meantime
                    pause = self.ingest.takeover_pause
                    log.warning("mqtt: session %s was taken over by another connection; retrying in %.1fs",
                                self.options.client_id, pause)
                else:
                    pause = delay
                    log.warning("mqtt: %s; reconnecting in %.1fs", exc, delay)
                    delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    self.conn = None
                    if self.stopping:
                        await conn.disconnect()
                    else:
                        conn.abort()
            if pause and not self.stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)
        self._connected(False)

    async def _consume(self, conn: Connection) -> None:
        ingest = self.ingest
        seen = 0  # DUP messages of this connection counted so far
        while not self.stopping:
            msgs = await conn.next_batch(ingest.batch)
            if not msgs:
                continue
            ingest.received += len(msgs)
            ingest.redelivered += conn.redelivered - seen
            seen = conn.redelivered
            delay = 0.1
            while True:
                try:
                    await ingest.handle(msgs)
                    break
                except (asyncio.CancelledError, MqttError):
                    raise
                except Exception as exc:  # the store is unavailable: keep the batch unacknowledged, retry
                    if self.stopping or not conn.is_open:
                        return
                    log.warning("mqtt: storing %d messages failed (%s); retrying in %.1fs", len(msgs), exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    delay = min(delay * 2, 10.0)
            conn.ack(msgs)  # after the commit: a crash before this line loses nothing acknowledged


class DeviceIngest:
    """Subscribes to the broker and feeds measurements into the ingest service, one batch at a time.

    One process on its own (the in-process bus, or `share=` empty): one connection, a clean session unless
    the URL names one (`client_id=`). Several processes of a node (a shared bus): the node's named sessions
    (`node_sessions`), each held by the owner of its pipeline partition, so the broker's unacknowledged and
    queued messages of a dead process's sessions go to the survivor that takes its partitions over.
    """

    batch = 1000
    stop_timeout = 20.0  # seconds stop() waits for the batch in flight

    def __init__(self, rt: CityBrain, url: str, registry: DeviceRegistry) -> None:
        self.rt = rt
        self.url = url
        self.registry = registry
        # several processes of a node (a shared bus) share one subscription; one process takes every message
        self.options = client_options(url, share=share_group(rt.settings) if shared_bus(rt.settings) else "")
        self.slots = node_sessions(url, rt.settings)
        self.prefix = topic_prefix(url)
        self._prefix = (self.prefix + "/").encode() if self.prefix else b""
        self.takeover_pause = max(1.0, float(rt.settings.lease_ttl))
        self.connected = asyncio.Event()
        self.received = 0
        self.stored = 0
        self.rejected = 0
        self.redelivered = 0  # messages the broker sent again (DUP): an earlier connection had not acknowledged them
        self.resumed = 0  # connections that found their named session at the broker
        self.sessions: dict[int, Session] = {}
        self._topics: dict[bytes, tuple[str, str, str | None, str]] = {}  # topic → apikey, device, attr, key

    async def start(self) -> None:
        """Start the client (or, on a node of several processes, follow the partition leases); stop with the runtime."""
        if self.slots:
            self.rt.cluster.on_partitions(self._acquire, self._release)
        else:
            self._open(0, self.options, "mqtt")
        self.rt.cluster.report("mqtt", self.describe)
        self.rt.on_stop(self.stop)

    def _open(self, slot: int, options: ConnectOptions, name: str) -> None:
        session = Session(self, options, name)
        self.sessions[slot] = session
        session.start()

    def _slots_of(self, partition: int) -> list[int]:
        return [k for k in self.slots if k % self.rt.cluster.partitions == partition]

    async def _acquire(self, partition: int) -> None:
        for k in self._slots_of(partition):
            if k not in self.sessions:
                self._open(k, self.slots[k], self.slots[k].client_id)

    async def _release(self, partition: int) -> None:
        # a rebalance runs inside the cluster's lease round: wait for a batch in flight at most one renewal tick
        # (longer would let this process's leases lapse); a batch not stored by then is the next holder's
        timeout = self.stop_timeout if self.rt.cluster.stopping else max(0.5, self.rt.cluster.tick)
        going = [self.sessions.pop(k) for k in self._slots_of(partition) if k in self.sessions]
        await asyncio.gather(*(s.stop(timeout) for s in going))

    async def stop(self) -> None:
        """Finish and acknowledge the batches in flight, then disconnect (the runtime calls this at stop)."""
        going, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.stop(self.stop_timeout) for s in going))
        self.connected.clear()

    def connection_changed(self) -> None:
        """Keep `connected` set while any session of this process is connected."""
        if any(s.connected.is_set() for s in self.sessions.values()):
            self.connected.set()
        else:
            self.connected.clear()

    def describe(self) -> dict[str, Any]:
        """This process's MQTT sessions (for GET /-/cluster)."""
        return {"sessions": sorted(s.options.client_id for s in self.sessions.values()),
                "connected": sorted(s.options.client_id for s in self.sessions.values() if s.connected.is_set()),
                "received": self.received, "stored": self.stored, "rejected": self.rejected,
                "redelivered": self.redelivered, "resumed": self.resumed}

    def _topic(self, raw: bytes) -> tuple[str, str, str | None, str]:
        parsed = self._topics.get(raw)
        if parsed is None:
            topic = raw.decode("utf-8", "replace")
            if self._prefix:
                if not raw.startswith(self._prefix):
                    raise ValidationError(f"topic {topic!r} is not under the prefix {self.prefix!r}", field="topic")
                topic = topic[len(self.prefix) + 1:]
            apikey, device_id, attr = parse_topic(topic)
            parsed = (apikey, device_id, attr, f"{apikey}/{device_id}")
            if len(self._topics) >= 100_000:
                self._topics.clear()
            self._topics[raw] = parsed
        return parsed

    async def handle(self, msgs: list[Publish]) -> None:
        """Turn messages into observation items, dead-letter the bad ones, submit the rest (one commit each).

        A device this process does not know is looked up in the store first (another process, or the
        `citybrain devices` command, may have provisioned it since this one loaded its devices)."""
        items: list[dict[str, Any]] = []
        letters: list[AddDeadLetter] = []
        now = self.rt.now()
        unknown: list[Publish] = []
        self._convert(msgs, now, items, letters, unknown)
        if unknown:
            await self.registry.resolve({self._topic(topic)[3] for topic, _, _, _ in unknown})
            self._convert(unknown, now, items, letters, None)
        if letters:
            self.rejected += len(letters)
            await self.rt.store.apply(letters)
        if items:
            report = await self.rt.ports.ingest.submit(items, self.rt.context("mqtt"), "mqtt")
            self.stored += report.stored

    def _convert(self, msgs: list[Publish], now: str, items: list[dict[str, Any]], letters: list[AddDeadLetter],
                 unknown: list[Publish] | None) -> None:
        """Append an observation item (or a dead letter) per message; messages of unknown devices go to
        `unknown` when it is given."""
        devices = self.registry.devices
        observation = self.registry.observation
        loads = orjson.loads
        for msg in msgs:
            topic, raw = msg[0], msg[1]
            try:
                apikey, device_id, attr, key = self._topic(topic)
                device = devices.get(key)
                if device is None:
                    if unknown is not None:
                        unknown.append(msg)
                        continue
                    raise ValidationError(f"unknown device {device_id} (apikey {apikey}): provision it with "
                                          "`citybrain devices add`", field="device")
                try:
                    payload = loads(raw)
                except orjson.JSONDecodeError:
                    if attr is None:
                        raise ValidationError("payload is not valid JSON", field="payload") from None
                    payload = raw.decode("utf-8", "replace")
                if attr is not None:
                    payload = {attr: payload}
                elif type(payload) is not dict:
                    raise ValidationError("payload: expected a JSON object of measurements", field="payload")
                observed = payload.get("TimeInstant") or payload.get("timestamp") or now
                items.append(observation(device, payload, observed))
            except ValidationError as exc:
                letters.append(AddDeadLetter(source=f"mqtt:{topic.decode('utf-8', 'replace')}", reason=exc.detail,
                                             payload=raw.decode("utf-8", "replace"), time=now))
