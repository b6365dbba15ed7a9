"""citybrain's MQTT 5 subscriber connection (citybrain/mqtt/wire.py): packet framing and encoding without a
broker, then against the real Mosquitto: every QoS 1 message of a burst arrives once, in order, and the
broker sends again what was not acknowledged. 7 cases.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from services import require_service

from citybrain.mqtt.client import client_options
from citybrain.mqtt.wire import (
    Connection,
    ConnectOptions,
    MqttError,
    ack_packets,
    connect_packet,
    parse_properties,
    read_varint,
    varint,
)

HOST, PORT = "127.0.0.1", 1883


def publish_packet(topic: str, payload: bytes, qos: int = 1, packet_id: int = 1, props: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode()
    if qos:
        body += packet_id.to_bytes(2, "big")
    body += varint(len(props)) + props + payload
    return bytes([0x30 | qos << 1]) + varint(len(body)) + body


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.paused = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def abort(self) -> None:
        self.aborted = True


def connection() -> tuple[Connection, FakeTransport]:
    conn = Connection(ConnectOptions(HOST, PORT, "t"))
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_varint_round_trip() -> None:
    for n in (0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455):
        assert read_varint(varint(n), 0) == (n, len(varint(n)))
    assert read_varint(b"\x80", 0) == (-1, 0)  # incomplete


async def test_packets_split_anywhere_are_framed_in_order() -> None:
    big = b"x" * 300  # a two-byte remaining length
    stream = b"".join([
        publish_packet("/k/d1/attrs", b'{"t": 1}', packet_id=7),
        publish_packet("/k/d2/attrs", big, packet_id=8, props=b"\x01\x01" + b"\x26\x00\x01a\x00\x01b"),
        b"\xd0\x00",  # PINGRESP
        publish_packet("/k/d3/attrs/t", b"21.5", qos=0),
    ])
    expected = [(b"/k/d1/attrs", b'{"t": 1}', 1, 7), (b"/k/d2/attrs", big, 1, 8), (b"/k/d3/attrs/t", b"21.5", 0, 0)]
    for cut in range(1, len(stream)):
        conn, _ = connection()
        conn.data_received(stream[:cut])
        conn.data_received(stream[cut:])
        assert conn.pending == expected, cut
    conn, transport = connection()
    for i in range(len(stream)):  # one byte at a time
        conn.data_received(stream[i:i + 1])
    assert await conn.next_batch(2) == expected[:2] and await conn.next_batch(10) == expected[2:]
    conn.ack(expected)
    assert transport.written == [b"\x40\x02\x00\x07\x40\x02\x00\x08"]  # PUBACKs in order; none for QoS 0


async def test_bad_packets_and_topic_aliases_close_the_connection() -> None:
    conn, transport = connection()
    conn.data_received(publish_packet("/k/d/attrs", b"{}", props=b"\x23\x00\x01"))  # topic alias 1
    assert transport.aborted and conn.error is not None and "topic alias" in str(conn.error)
    conn, transport = connection()
    conn.data_received(b"\x30\x04\x00\x09ab" + publish_packet("/k/d/attrs", b"{}"))  # topic beyond the packet
    assert transport.aborted and conn.pending == [] and "malformed PUBLISH" in str(conn.error)
    conn.connection_lost(None)
    with pytest.raises(MqttError):
        await conn.next_batch(10)


def test_connect_and_ack_encoding() -> None:
    opts = client_options("mqtt://u:p%40ss@broker:1884?client_id=cb-1")
    assert (opts.host, opts.port, opts.client_id, opts.clean_start, opts.password) == ("broker", 1884, "cb-1", False,
                                                                                      "p@ss")
    packet = connect_packet(opts)
    size, i = read_varint(packet, 1)
    body = packet[i:]
    assert packet[0] == 0x10 and size == len(body) and body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # username, password; clean start off (a named session)
    plen, k = read_varint(body, 10)
    props = parse_properties(body[k:k + plen])
    assert props == {0x11: 7 * 24 * 3600, 0x21: 65535}  # Receive Maximum is sent even at its default
    assert ack_packets([(b"t", b"", 1, 1), (b"t", b"", 0, 0), (b"t", b"", 2, 513)]) == b"\x40\x02\x00\x01\x50\x02\x02\x01"
    assert client_options("mqtt://h").clean_start is True
    # the processes of one node share one subscription group: each device message goes to one of them
    shared = client_options("mqtt://h", share="citybrain-city").subscriptions
    assert ("$share/citybrain-city//+/+/attrs", 1) in shared and len(shared) == 4
    assert client_options("mqtt://h?share=", share="citybrain-city").subscriptions[0] == ("/+/+/attrs", 1)


async def _collect(conn: Connection, n: int, ack: bool) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        batch = await asyncio.wait_for(conn.next_batch(1000), 10)
        got += [payload for _, payload, _, _ in batch]
        if ack:
            conn.ack(batch)
    return got


async def test_burst_through_mosquitto_arrives_once_in_order() -> None:
    require_service("Mosquitto MQTT broker", HOST, PORT)
    topic = f"/wire{uuid.uuid4().hex[:8]}/d1/attrs"
    sub = await Connection.open(ConnectOptions(HOST, PORT, f"cb-wire-{uuid.uuid4().hex[:8]}",
                                               subscriptions=[(topic, 1)]))
    pub = await Connection.open(ConnectOptions(HOST, PORT, f"cb-wire-pub-{uuid.uuid4().hex[:8]}"))
    try:
        n = 5000  # well beyond Mosquitto's default in-flight window (20) and queue (1000)
        pub.write(b"".join(publish_packet(topic, b"%d" % k, packet_id=k % 65535 + 1) for k in range(n)))
        got = await _collect(sub, n, ack=True)
        assert got == [b"%d" % k for k in range(n)]
    finally:
        await pub.disconnect()
        await sub.disconnect()


async def test_unacknowledged_messages_come_back_to_a_named_session() -> None:
    require_service("Mosquitto MQTT broker", HOST, PORT)
    topic = f"/wire{uuid.uuid4().hex[:8]}/d1/attrs"
    opts = ConnectOptions(HOST, PORT, f"cb-wire-{uuid.uuid4().hex[:8]}", clean_start=False, session_expiry=60,
                          subscriptions=[(topic, 1)])
    sub = await Connection.open(opts)
    pub = await Connection.open(ConnectOptions(HOST, PORT, f"cb-wire-pub-{uuid.uuid4().hex[:8]}"))
    try:
        pub.write(b"".join(publish_packet(topic, b"%d" % k, packet_id=k + 1) for k in range(10)))
        assert await _collect(sub, 10, ack=False) == [b"%d" % k for k in range(10)]
        await sub.disconnect()  # nothing acknowledged
        sub = await Connection.open(opts)
        assert sub.session_present
        assert await _collect(sub, 10, ack=True) == [b"%d" % k for k in range(10)]
        await sub.disconnect()
        opts.clean_start, opts.session_expiry = True, 0  # drop the session at the broker
        sub = await Connection.open(opts)
    finally:
        await pub.disconnect()
        await sub.disconnect()
