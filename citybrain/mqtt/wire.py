"""A small asyncio MQTT 5 subscriber connection, built for batch ingest with acknowledgement after commit.

Why not paho/aiomqtt: they decode every PUBLISH into several Python objects (a Properties object, an
MQTTMessage, an MQTTMessageInfo, an aiomqtt Message), run the topic matcher and pass each message through
an asyncio queue. With one event-loop thread that cost was about half of the node's CPU per message. This
connection is an `asyncio.Protocol`: `data_received` cuts every complete packet out of what arrived in one
tight loop, keeps PUBLISH packets as `(topic, payload, qos, packet_id)` tuples, and the consumer takes them
as a batch (`next_batch`) and acknowledges the batch with one write (`ack`) after it is committed.

What it speaks (MQTT 5.0, client side, subscribe only): CONNECT (clean start or a named session with a
Session Expiry Interval, Receive Maximum, username/password, TLS through the event loop), CONNACK,
SUBSCRIBE/SUBACK, incoming PUBLISH QoS 0/1/2 (QoS 1 → PUBACK, QoS 2 → PUBREC, PUBREL → PUBCOMP; the client
subscribes with QoS 1 so a conforming broker sends no QoS 2), PINGREQ/PINGRESP keep-alive, DISCONNECT both
ways. No topic aliases (the client announces none, so a broker must not use them), no AUTH exchange, no
will message, no publishing: that is all device ingest needs.

Flow control: the broker keeps at most Receive Maximum unacknowledged QoS 1/2 messages in flight to us;
on top of that the connection stops reading from the socket while more than `high_water` messages wait
for the consumer (QoS 0 messages have no window), so memory stays bounded either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass, field
from typing import cast

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 3, 4, 5, 6, 7
CONNACK, SUBACK, PINGRESP, DISCONNECT, AUTH = 2, 9, 13, 14, 15

# Property identifier → how its value is encoded (MQTT 5.0 §2.2.2.2)
_BYTE, _TWO, _FOUR, _VAR, _STR, _BIN, _PAIR = range(7)
_PROPERTY_KIND = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VAR, 0x11: _FOUR, 0x12: _STR,
    0x13: _TWO, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _FOUR, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _TWO, 0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
REASON_STRING, SERVER_KEEP_ALIVE, TOPIC_ALIAS, ASSIGNED_CLIENT_ID = 0x1F, 0x13, 0x23, 0x12
_ACK = struct.Struct(">BBH")
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # reason 0x00, normal disconnection

# A received PUBLISH: topic (bytes, UTF-8), payload, QoS, packet identifier (0 for QoS 0)
Publish = tuple[bytes, bytes, int, int]


class MqttError(Exception):
    """The connection failed, was refused or was closed; the caller reconnects.

    reason: the reason code of a DISCONNECT the broker sent (0x8E: another connection took the session over)."""

    def __init__(self, message: str, reason: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ConnectOptions:
    """What CONNECT says and where it goes."""

    host: str
    port: int
    client_id: str
    clean_start: bool = True
    session_expiry: int = 0
    receive_maximum: int = 65535
    keepalive: int = 60
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    subscriptions: list[tuple[str, int]] = field(default_factory=list)  # (topic filter, maximum QoS)


def varint(n: int) -> bytes:
    """Encode a Variable Byte Integer."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 65535:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(o: ConnectOptions) -> bytes:
    """Encode CONNECT (protocol level 5)."""
    flags = 0x02 if o.clean_start else 0
    props = bytearray()
    if o.session_expiry:
        props += b"\x11" + o.session_expiry.to_bytes(4, "big")
    # always sent, even at the protocol default of 65,535: without it Mosquitto applies its own
    # max_inflight_messages (20) and drops what exceeds max_queued_messages behind that window
    props += b"\x21" + o.receive_maximum.to_bytes(2, "big")
    payload = _string(o.client_id)
    if o.username is not None:
        flags |= 0x80
        payload += _string(o.username)
        if o.password is not None:
            flags |= 0x40
            payload += _string(o.password)
    body = _string("MQTT") + bytes([5, flags]) + o.keepalive.to_bytes(2, "big") + varint(len(props)) + props + payload
    return _packet(0x10, body)


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    """Encode SUBSCRIBE (no properties; options byte = maximum QoS)."""
    body = packet_id.to_bytes(2, "big") + b"\x00" + b"".join(_string(t) + bytes([q & 3]) for t, q in filters)
    return _packet(0x82, body)


def ack_packets(batch: list[Publish]) -> bytes:
    """PUBACK for every QoS 1 and PUBREC for every QoS 2 message of a batch, in the order received."""
    pack = _ACK.pack
    return b"".join([pack(0x40, 2, pid) if qos == 1 else pack(0x50, 2, pid) for _, _, qos, pid in batch if qos])


def read_varint(buf: bytes | bytearray, i: int) -> tuple[int, int]:
    """Decode a Variable Byte Integer at i; return (value, index after it) or (-1, i) when incomplete."""
    value, shift, n, start = 0, 0, len(buf), i
    while True:
        if i >= n:
            return -1, start
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise MqttError("malformed packet: variable byte integer longer than 4 bytes")


def parse_properties(data: bytes) -> dict[int, object]:
    """Decode a property block (without its length); repeated properties keep the last value."""
    out: dict[int, object] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            pid = data[i]
            i += 1
            kind = _PROPERTY_KIND.get(pid)
            value: object
            if kind == _BYTE:
                value, i = data[i], i + 1
            elif kind == _TWO:
                value, i = int.from_bytes(data[i:i + 2], "big"), i + 2
            elif kind == _FOUR:
                value, i = int.from_bytes(data[i:i + 4], "big"), i + 4
            elif kind == _VAR:
                value, i = read_varint(data, i)
            elif kind in (_STR, _BIN):
                size = int.from_bytes(data[i:i + 2], "big")
                raw = data[i + 2:i + 2 + size]
                value, i = (raw.decode("utf-8", "replace") if kind == _STR else raw), i + 2 + size
            elif kind == _PAIR:
                k = int.from_bytes(data[i:i + 2], "big")
                i += 2 + k
                v = int.from_bytes(data[i:i + 2], "big")
                value, i = (data[i - k:i].decode("utf-8", "replace"), data[i + 2:i + 2 + v].decode("utf-8", "replace")), i + 2 + v
            else:
                raise MqttError(f"malformed packet: unknown property 0x{pid:02x}")
            out[pid] = value
    except IndexError:
        raise MqttError("malformed packet: truncated properties") from None
    if i != n:
        raise MqttError("malformed packet: truncated properties")
    return out


class Connection(asyncio.Protocol):
    """One MQTT 5 connection; `open()` connects, authenticates and subscribes."""

    open_timeout = 10.0  # seconds for TCP/TLS connect, CONNACK and SUBACK together
    high_water = 20_000  # stop reading the socket while this many received messages wait for the consumer

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: list[Publish] = []
        self.waiter: asyncio.Future[None] | None = None
        self.connack: asyncio.Future[bytes] = self.loop.create_future()
        self.subacks: dict[int, asyncio.Future[bytes]] = {}
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.error: MqttError | None = None
        self.paused = False
        self.held = False  # paused for good (stopping): next_batch does not resume reading
        self.session_present = False
        self.keepalive = options.keepalive
        self.last_write = self.loop.time()
        self.ping_sent = 0.0  # loop time of an unanswered PINGREQ
        self._timer: asyncio.TimerHandle | None = None
        self._next_id = 0
        self.redelivered = 0  # PUBLISH packets with the DUP flag: sent before, unacknowledged (a resumed session)

    # lifecycle -------------------------------------------------------------------------------
    @classmethod
    async def open(cls, options: ConnectOptions) -> Connection:
        """Connect, send CONNECT, wait for CONNACK, subscribe; raise MqttError (or OSError) on failure."""
        conn = cls(options)
        loop = conn.loop
        timeout = cls.open_timeout
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, options.host, options.port, ssl=options.tls,
                                             server_hostname=options.host if options.tls else None)
                conn.write(connect_packet(options))
                body = await conn.connack
                conn._on_connack(body)
                if options.subscriptions:
                    packet_id = conn._packet_id()
                    fut: asyncio.Future[bytes] = loop.create_future()
                    conn.subacks[packet_id] = fut
                    conn.write(subscribe_packet(packet_id, options.subscriptions))
                    conn._on_suback(await fut)
        except TimeoutError:
            conn.abort()
            raise MqttError(f"no answer from {options.host}:{options.port} within {timeout:g} s") from None
        except BaseException:
            conn.abort()
            raise
        conn._schedule_keepalive()
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.error is None:
            self.error = MqttError(f"connection lost: {exc}" if exc else "connection closed")
        if self._timer is not None:
            self._timer.cancel()
        for fut in (self.connack, *self.subacks.values()):
            if not fut.done():
                fut.set_exception(self.error)
                fut.exception()  # retrieved: open() may have given up on it already (no "never retrieved" noise)
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    def fail(self, error: MqttError) -> None:
        """Close the connection because of a protocol error."""
        if self.error is None:
            self.error = error
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()

    async def disconnect(self) -> None:
        """Send DISCONNECT (normal) and close; a named session stays at the broker."""
        if self.transport is not None and not self.transport.is_closing():
            self.error = self.error or MqttError("disconnected")
            self.write(DISCONNECT_PACKET)
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), 5)

    @property
    def is_open(self) -> bool:
        """True until the connection is lost or closed."""
        return not self.closed.done()

    # writing ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send bytes (a no-op once the connection is closing)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_write = self.loop.time()

    def ack(self, batch: list[Publish]) -> None:
        """Acknowledge a handled batch with one write (PUBACK for QoS 1, PUBREC for QoS 2)."""
        data = ack_packets(batch)
        if data:
            self.write(data)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    # reading ---------------------------------------------------------------------------------
    async def next_batch(self, limit: int) -> list[Publish]:
        """Wait for received messages and return up to `limit` of them, oldest first.

        Returns [] when woken by `interrupt()`; raises MqttError once the connection is gone."""
        if not self.pending:
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
            if not self.pending:
                if self.error is not None:
                    raise self.error
                return []
        if len(self.pending) <= limit:
            batch, self.pending = self.pending, []
        else:
            batch, self.pending = self.pending[:limit], self.pending[limit:]
        if self.paused and not self.held and len(self.pending) < self.high_water // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return batch

    def interrupt(self) -> None:
        """Make a waiting `next_batch` return (with [] if nothing arrived)."""
        self._wake()

    def pause(self) -> None:
        """Stop reading from the socket for good (used when stopping: nothing more is taken)."""
        self.held = True
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
        n = len(data)
        i = 0
        out = self.pending
        before = len(out)
        try:
            while i < n:
                # fixed header: type/flags byte, then the remaining length (1–4 bytes, inlined for speed)
                if i + 1 >= n:
                    break
                first = data[i]
                b = data[i + 1]
                if b < 0x80:
                    size, j = b, i + 2
                else:
                    size, j = read_varint(data, i + 1)
                    if size < 0:
                        break
                end = j + size
                if end > n:
                    break
                if first >> 4 == PUBLISH:
                    qos = (first >> 1) & 3
                    if first & 0x08:
                        self.redelivered += 1
                    k = j + 2 + ((data[j] << 8) | data[j + 1])
                    topic = data[j + 2:k]
                    if qos:
                        packet_id = (data[k] << 8) | data[k + 1]
                        k += 2
                    else:
                        packet_id = 0
                    if k >= end:
                        raise MqttError("malformed PUBLISH packet")
                    plen = data[k]
                    if plen == 0:
                        k += 1
                    else:
                        plen, k2 = read_varint(data, k)
                        self._publish_properties(data[k2:k2 + plen], topic)
                        k = k2 + plen
                    if k > end or not topic or qos == 3:
                        raise MqttError("malformed PUBLISH packet")
                    out.append((topic, data[k:end], qos, packet_id))
                else:
                    self._control(first, data[j:end])
                i = end
        except IndexError:
            self.fail(MqttError("malformed packet"))
            return
        except MqttError as exc:
            self.fail(exc)
            return
        if i < n:
            self.buf = bytearray(data[i:])
        elif buf:
            self.buf = bytearray()
        if len(out) > before:
            self._wake()
            if len(out) >= self.high_water and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()

    def _publish_properties(self, raw: bytes, topic: bytes) -> None:
        if TOPIC_ALIAS in parse_properties(raw):
            raise MqttError("the broker used a topic alias, which this client does not allow")

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == PINGRESP:
            self.ping_sent = 0.0
        elif kind == PUBREL:  # second half of a QoS 2 delivery: the message was handled when we sent PUBREC
            self.write(_ACK.pack(0x70, 2, int.from_bytes(body[:2], "big")))
        elif kind == CONNACK:
            if not self.connack.done():
                self.connack.set_result(body)
        elif kind == SUBACK:
            fut = self.subacks.pop(int.from_bytes(body[:2], "big"), None)
            if fut is not None and not fut.done():
                fut.set_result(body)
        elif kind == DISCONNECT:
            reason = body[0] if body else 0
            props = parse_properties(body[2:2 + body[1]]) if len(body) > 1 else {}
            text = props.get(REASON_STRING)
            raise MqttError(f"the broker disconnected (reason 0x{reason:02x}{': ' + str(text) if text else ''})",
                            reason)
        elif kind in (PUBACK, PUBREC, PUBCOMP):
            pass  # this client publishes nothing; ignore stray acknowledgements
        elif kind == AUTH:
            raise MqttError("the broker asked for enhanced authentication (AUTH), which is not supported")
        else:
            raise MqttError(f"unexpected MQTT packet type {kind}")

    def _on_connack(self, body: bytes) -> None:
        if len(body) < 2:
            raise MqttError("malformed CONNACK")
        self.session_present = bool(body[0] & 1)
        reason = body[1]
        props: dict[int, object] = {}
        if len(body) > 2:
            plen, k = read_varint(body, 2)
            props = parse_properties(body[k:k + plen])
        if reason >= 0x80:
            text = props.get(REASON_STRING)
            raise MqttError(f"connection refused (reason 0x{reason:02x}{': ' + str(text) if text else ''})")
        keepalive = props.get(SERVER_KEEP_ALIVE)
        if isinstance(keepalive, int):
            self.keepalive = keepalive

    def _on_suback(self, body: bytes) -> None:
        plen, k = read_varint(body, 2)
        codes = body[k + plen:]
        refused = [(t, c) for (t, _), c in zip(self.options.subscriptions, codes, strict=False) if c >= 0x80]
        if refused or len(codes) != len(self.options.subscriptions):
            raise MqttError(f"subscription refused: {', '.join(f'{t} (0x{c:02x})' for t, c in refused) or body!r}")

    # keep-alive ------------------------------------------------------------------------------
    def _schedule_keepalive(self) -> None:
        if self.keepalive > 0 and self.is_open:
            self._timer = self.loop.call_later(max(self.keepalive / 4, 0.5), self._keepalive)

    def _keepalive(self) -> None:
        now = self.loop.time()
        if self.paused:  # not reading: a PINGRESP cannot be seen, so only keep our side alive
            self.ping_sent = 0.0
        elif self.ping_sent and now - self.ping_sent > self.keepalive:
            self.fail(MqttError(f"no PINGRESP within {self.keepalive} s"))
            return
        if not self.ping_sent and now - self.last_write >= self.keepalive / 2:
            self.write(PINGREQ_PACKET)
            self.ping_sent = now
        self._schedule_keepalive()
