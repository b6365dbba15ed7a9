"""The MQTT client: FIWARE IoT Agent JSON topics → observation ingest, QoS 1 acknowledged after commit.

Topics: `/<apikey>/<device_id>/attrs` with a JSON object of measurements, and `/<apikey>/<device_id>/attrs/<attr>`
with one value. Messages are taken in batches (whatever has arrived, up to `batch`), stored with one ingest
call, and only then acknowledged, so the broker redelivers anything citybrain had not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citybrain.errors import ValidationError
from citybrain.mqtt.devices import DeviceRegistry

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)
TOPICS = ("/+/+/attrs", "/+/+/attrs/+", "+/+/attrs", "+/+/attrs/+")
RECEIVE_MAXIMUM = 65535  # QoS 1 messages the broker may have in flight to us (acknowledged after commit)
SESSION_EXPIRY = 7 * 24 * 3600  # seconds a named session (…?client_id=) outlives a disconnection


def client_options(url: str) -> dict[str, Any]:
    """Return aiomqtt.Client options from mqtt[s]://user:pass@host:port?client_id=…"""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"mqtt: {url!r} is not an mqtt:// or mqtts:// URL")
    tls = u.scheme in ("mqtts", "ssl")
    opts: dict[str, Any] = {"hostname": u.hostname or "127.0.0.1", "port": u.port or (8883 if tls else 1883)}
    if u.username:
        opts["username"] = unquote(u.username)
        opts["password"] = unquote(u.password or "")
    query = parse_qs(u.query)
    # MQTT 5 lets the client set Receive Maximum: Mosquitto then keeps that many QoS 1 messages in flight to
    # citybrain (MQTT 3.1.1: its max_inflight_messages, 20 by default). Since we acknowledge only after the
    # store commit, a window of 20 caps a batch at 20 messages, and messages beyond Mosquitto's
    # max_queued_messages (1000) are dropped by the broker while citybrain commits.
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    opts["protocol"] = aiomqtt.ProtocolVersion.V5
    if "client_id" in query:
        opts["identifier"] = query["client_id"][0]
        # a named session keeps QoS 1 messages while citybrain is down (MQTT 5: clean start off + expiry)
        opts["clean_start"] = False
        props.SessionExpiryInterval = SESSION_EXPIRY
    opts["properties"] = props
    if tls:
        ctx = ssl.create_default_context(cafile=query["ca"][0] if "ca" in query else None)
        opts["tls_context"] = ctx
    return opts


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """Return (apikey, device_id, attr or None) of an IoT Agent JSON topic, or raise ValidationError."""
    parts = topic.strip("/").split("/")
    if len(parts) in (3, 4) and parts[2] == "attrs" and parts[0] and parts[1]:
        return parts[0], parts[1], parts[3] if len(parts) == 4 else None
    raise ValidationError(f"topic {topic!r} is not /<apikey>/<device_id>/attrs[/<attr>]", field="topic")


class DeviceIngest:
    """Subscribes to the broker and feeds measurements into the ingest service."""

    batch = 1000

    def __init__(self, rt: CityBrain, url: str, registry: DeviceRegistry) -> None:
        self.rt = rt
        self.url = url
        self.registry = registry
        self.options = client_options(url)
        self.connected = asyncio.Event()
        self.received = 0
        self.stored = 0
        self.rejected = 0

    async def start(self) -> None:
        """Start the client task (it reconnects with backoff until the runtime stops)."""
        self.rt.spawn(self._run(), name="mqtt-ingest")

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                client = aiomqtt.Client(**self.options)
                client._client.manual_ack_set(True)  # acknowledge QoS 1 only after the store commit
                async with client:
                    for topic in TOPICS:
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    delay = 0.5
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("mqtt: %s; reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _consume(self, client: aiomqtt.Client) -> None:
        queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

        async def read() -> None:
            async for message in client.messages:
                queue.put_nowait(message)

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                msgs = [getter.result()]
                while len(msgs) < self.batch and not queue.empty():
                    msgs.append(queue.get_nowait())
                await self.handle(msgs)
                for m in msgs:
                    if m.qos > 0:
                        client._client.ack(m.mid, m.qos)
            reader.result()  # re-raise the connection error
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def handle(self, msgs: list[aiomqtt.Message]) -> None:
        """Turn messages into observation items, dead-letter the bad ones, submit the rest."""
        items: list[dict[str, Any]] = []
        now = self.rt.now()
        for m in msgs:
            topic = m.topic.value
            raw = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.received += 1
            try:
                apikey, device_id, attr = parse_topic(topic)
                device = self.registry.find(apikey, device_id)
                if device is None:
                    raise ValidationError(f"unknown device {device_id} (apikey {apikey}): provision it with "
                                          "`citybrain devices add`", field="device")
                try:
                    payload = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    if attr is None:
                        raise ValidationError("payload is not valid JSON", field="payload") from None
                    payload = raw.decode("utf-8", "replace")
                if attr is not None:
                    payload = {attr: payload}
                if not isinstance(payload, dict):
                    raise ValidationError("payload: expected a JSON object of measurements", field="payload")
                observed = payload.get("TimeInstant") or payload.get("timestamp") or now
                items.append(self.registry.observation(device, payload, observed))
            except ValidationError as exc:
                self.rejected += 1
                await self.rt.dead_letter(f"mqtt:{topic}", exc.detail, raw)
        if items:
            report = await self.rt.services["ingest"].submit(items, self.rt.context("mqtt"), "mqtt")
            self.stored += report.stored
