"""The MQTT client: FIWARE IoT Agent JSON topics → observation ingest, QoS 1 acknowledged after commit.

Topics: `/<apikey>/<device_id>/attrs` with a JSON object of measurements, and `/<apikey>/<device_id>/attrs/<attr>`
with one value. Messages are taken in batches (whatever has arrived, up to `batch`), stored with one ingest
call, and only then acknowledged, so the broker redelivers anything citybrain had not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
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
SESSION_EXPIRY = 7 * 24 * 3600  # seconds a named session (…?client_id=) outlives a disconnection


def share_group(settings: Any) -> str:
    """Return the shared-subscription group of a node's processes (node, stream and subject prefix)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"citybrain-{settings.node_id}-{settings.bus_stream}-{settings.bus_prefix}")


def client_options(url: str, share: str = "") -> ConnectOptions:
    """Return the connection options of mqtt[s]://user:pass@host:port?client_id=…&ca=…&share=…

    share: the MQTT 5 shared-subscription group (`$share/<group>/<filter>`): the processes of one node
    subscribe in one group, so the broker hands each device message to one of them instead of all (the URL's
    `share=` overrides it; `share=` empty subscribes plainly)."""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"mqtt: {url!r} is not an mqtt:// or mqtts:// URL")
    tls = u.scheme in ("mqtts", "ssl")
    query = parse_qs(u.query, keep_blank_values=True)
    # MQTT 5 lets the client set Receive Maximum: Mosquitto then keeps that many QoS 1 messages in flight to
    # citybrain (MQTT 3.1.1: its max_inflight_messages, 20 by default). Since we acknowledge only after the
    # store commit, a window of 20 caps a batch at 20 messages, and messages beyond Mosquitto's
    # max_queued_messages (1000) are dropped by the broker while citybrain commits.
    opts = ConnectOptions(host=u.hostname or "127.0.0.1", port=u.port or (8883 if tls else 1883),
                          client_id=f"citybrain-{secrets.token_hex(6)}", receive_maximum=RECEIVE_MAXIMUM,
                          subscriptions=[])
    group = query["share"][0] if "share" in query else share
    opts.subscriptions = [(f"$share/{group}/{t}" if group else t, 1) for t in TOPICS]
    if u.username:
        opts.username = unquote(u.username)
        opts.password = unquote(u.password or "")
    if "client_id" in query:
        opts.client_id = query["client_id"][0]
        # a named session keeps QoS 1 messages while citybrain is down (MQTT 5: clean start off + expiry)
        opts.clean_start = False
        opts.session_expiry = SESSION_EXPIRY
    if tls:
        opts.tls = ssl.create_default_context(cafile=query["ca"][0] if "ca" in query else None)
    return opts


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """Return (apikey, device_id, attr or None) of an IoT Agent JSON topic, or raise ValidationError."""
    parts = topic.strip("/").split("/")
    if len(parts) in (3, 4) and parts[2] == "attrs" and parts[0] and parts[1]:
        return parts[0], parts[1], parts[3] if len(parts) == 4 else None
    raise ValidationError(f"topic {topic!r} is not /<apikey>/<device_id>/attrs[/<attr>]", field="topic")


class DeviceIngest:
    """Subscribes to the broker and feeds measurements into the ingest service, one batch at a time.

    The loop: take every message that has arrived (up to `batch`), turn them into observation items,
    submit them with one ingest call (committed), then acknowledge the whole batch with one write. Stopping
    finishes the batch in flight, acknowledges it and disconnects; what was received after it is not
    acknowledged, so the broker delivers it again (to a named session) when citybrain is back.
    """

    batch = 1000
    stop_timeout = 20.0  # seconds stop() waits for the batch in flight

    def __init__(self, rt: CityBrain, url: str, registry: DeviceRegistry) -> None:
        self.rt = rt
        self.url = url
        self.registry = registry
        # several processes of a node (a shared bus) share one subscription; one process takes every message
        share = "" if rt.settings.bus in ("memory", "", "memory://") else share_group(rt.settings)
        self.options = client_options(url, share=share)
        self.connected = asyncio.Event()
        self.received = 0
        self.stored = 0
        self.rejected = 0
        self.stopping = False
        self._stop = asyncio.Event()
        self.conn: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self._topics: dict[bytes, tuple[str, str, str | None, str]] = {}  # topic → apikey, device, attr, key

    async def start(self) -> None:
        """Start the client task (it reconnects with backoff until stopped); stop gracefully with the runtime."""
        self.task = self.rt.spawn(self._run(), name="mqtt-ingest")
        self.rt.on_stop(self.stop)

    async def stop(self) -> None:
        """Finish and acknowledge the batch in flight, then disconnect (the runtime calls this at stop)."""
        self.stopping = True
        self._stop.set()
        if self.conn is not None:
            self.conn.pause()
            self.conn.interrupt()
        if self.task is not None and not self.task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.task), self.stop_timeout)
        self.connected.clear()

    async def _run(self) -> None:
        delay = 0.5
        while not self.stopping:
            conn: Connection | None = None
            try:
                conn = await Connection.open(self.options)
                self.conn = conn
                if self.stopping:
                    break
                self.connected.set()
                delay = 0.5
                await self._consume(conn)
            except (MqttError, OSError) as exc:
                self.connected.clear()
                if self.stopping:
                    break
                log.warning("mqtt: %s; reconnecting in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    if self.stopping:
                        await conn.disconnect()
                    else:
                        conn.abort()
                self.conn = None
        self.connected.clear()

    async def _consume(self, conn: Connection) -> None:
        while not self.stopping:
            msgs = await conn.next_batch(self.batch)
            if not msgs:
                continue
            self.received += len(msgs)
            delay = 0.1
            while True:
                try:
                    await self.handle(msgs)
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

    def _topic(self, raw: bytes) -> tuple[str, str, str | None, str]:
        parsed = self._topics.get(raw)
        if parsed is None:
            apikey, device_id, attr = parse_topic(raw.decode("utf-8", "replace"))
            parsed = (apikey, device_id, attr, f"{apikey}/{device_id}")
            if len(self._topics) >= 100_000:
                self._topics.clear()
            self._topics[raw] = parsed
        return parsed

    async def handle(self, msgs: list[Publish]) -> None:
        """Turn messages into observation items, dead-letter the bad ones, submit the rest (one commit each)."""
        items: list[dict[str, Any]] = []
        letters: list[AddDeadLetter] = []
        now = self.rt.now()
        devices = self.registry.devices
        observation = self.registry.observation
        loads = orjson.loads
        for topic, raw, _, _ in msgs:
            try:
                apikey, device_id, attr, key = self._topic(topic)
                device = devices.get(key)
                if device is None:
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
        if letters:
            self.rejected += len(letters)
            await self.rt.store.apply(letters)
        if items:
            report = await self.rt.services["ingest"].submit(items, self.rt.context("mqtt"), "mqtt")
            self.stored += report.stored
