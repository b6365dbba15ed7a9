"""citybrain's MQTT 5 subscriber connection (citybrain/mqtt/wire.py): packet framing and encoding without a
broker, then against the real Mosquitto: every QoS 1 message of a burst arrives once, in order, the broker
sends again what was not acknowledged, and in a shared-subscription group it sends a dead member's
unacknowledged messages only to that member's session, never to another member (what the node's named
sessions are for). The connection options of one process and of a node's processes. 8 cases.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from services import require_service

from citybrain.config import Settings
from citybrain.mqtt.client import SESSION_EXPIRY, client_options, node_sessions, topic_prefix
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


def test_node_sessions_prefix_and_expiry() -> None:
    one = Settings(node_id="city", bus="memory")
    assert node_sessions("mqtt://h", one) == {}  # one process on its own: one connection as before
    many = Settings(node_id="city", bus="nats://n:4222", bus_stream="S", bus_prefix="p")
    slots = node_sessions("mqtt://h?prefix=/a/b/", many)
    assert sorted(slots) == list(range(8))
    assert [o.client_id for o in slots.values()][:2] == ["citybrain-city-S-p-0", "citybrain-city-S-p-1"]
    assert all(not o.clean_start and o.session_expiry == SESSION_EXPIRY for o in slots.values())
    assert slots[0].subscriptions == [("$share/citybrain-city-S-p/a/b/+/+/attrs", 1),
                                      ("$share/citybrain-city-S-p/a/b/+/+/attrs/+", 1)]
    named = node_sessions("mqtt://h?client_id=cb&sessions=2&expiry=60&share=g", many)
    assert [(o.client_id, o.session_expiry) for o in named.values()] == [("g-0", 60), ("g-1", 60)]
    assert named[0].subscriptions[0] == ("$share/g//+/+/attrs", 1)
    assert node_sessions("mqtt://h?share=", many) == {}  # a plain subscription: every process takes every message
    assert topic_prefix("mqtt://h?prefix=x/y") == "x/y" and topic_prefix("mqtt://h") == ""
    for bad in ("mqtt://h?prefix=a/%2B", "mqtt://h?prefix=$SYS", "mqtt://h?expiry=0", "mqtt://h?sessions=x"):
        with pytest.raises(ValueError):
            node_sessions(bad, many)


async def test_a_dead_group_members_unacknowledged_messages_go_to_its_session_only() -> None:
    """Mosquitto hands each message of a shared group to one member, in turn, offline persistent sessions
    included, and never moves a dead member's unacknowledged messages to another member: only the next
    connection of the same session gets them (with DUP set), together with what queued for it meanwhile."""
    require_service("Mosquitto MQTT broker", HOST, PORT)
    root = f"wire{uuid.uuid4().hex[:8]}"
    topic, group = f"{root}/k/d/attrs", f"g{root}"
    subs = [(f"$share/{group}/{root}/+/+/attrs", 1)]
    a_opts = ConnectOptions(HOST, PORT, f"cb-{root}-a", clean_start=False, session_expiry=60, subscriptions=subs)
    a = await Connection.open(a_opts)
    b = await Connection.open(ConnectOptions(HOST, PORT, f"cb-{root}-b", subscriptions=subs))
    pub = await Connection.open(ConnectOptions(HOST, PORT, f"cb-{root}-pub"))
    try:
        pub.write(b"".join(publish_packet(topic, b"m%d" % k, packet_id=k + 1) for k in range(10)))
        got_a, got_b = await _collect(a, 5, ack=False), await _collect(b, 5, ack=True)
        a.abort()  # a dies without acknowledging its five
        await asyncio.sleep(0.3)
        pub.write(b"".join(publish_packet(topic, b"n%d" % k, packet_id=k + 20) for k in range(10)))
        assert len(await _collect(b, 5, ack=True)) == 5  # b gets its turn only, none of a's
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.next_batch(100), 0.5)
        a = await Connection.open(a_opts)  # the session's next connection (another process in citybrain)
        assert a.session_present
        again = await _collect(a, 10, ack=True)
        assert again[:5] == got_a and len(set(again) | set(got_a) | set(got_b)) == 15
        assert a.redelivered == 5  # the unacknowledged five carry DUP; the five queued meanwhile do not
        await a.disconnect()
        a_opts.clean_start, a_opts.session_expiry, a_opts.subscriptions = True, 0, []
        a = await Connection.open(a_opts)  # drop the session at the broker
    finally:
        await pub.disconnect()
        await a.disconnect()
        await b.disconnect()
