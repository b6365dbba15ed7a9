"""MQTT device ingest through the real Mosquitto: IoT Agent JSON topics → state, history, NGSI-LD, notifications.

A provisioned sensor publishing on /<apikey>/<device_id>/attrs appears in the NGSI-LD API and its history
within 1 s and a subscription notification reaches a local HTTP endpoint; an unknown device and a
malformed payload are dead-lettered with the reason; stopping finishes and acknowledges the batch in
flight; under a topic prefix only the prefix's topics are taken, and a device provisioned in the store after
the start (by another process or `citybrain devices`) is found there. 5 cases.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import aiomqtt
import httpx
import msgspec
import pytest
from services import require_service

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.errors import ValidationError
from citybrain.mqtt.client import parse_topic
from citybrain.mqtt.devices import COLLECTION, Device, Mapping
from citybrain.runtime import CityBrain
from citybrain.store import PutDoc

HOST, PORT = "127.0.0.1", 1883
EID = "urn:ngsi-ld:AirQualityObserved:aq-7"


class Receiver(BaseHTTPRequestHandler):
    """A tiny notification endpoint."""

    got: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[CityBrain]:
    require_service("Mosquitto MQTT broker", HOST, PORT)
    rt = CityBrain(Settings(store=str(tmp_path / "mqtt.db"), bus="memory", mqtt=f"mqtt://{HOST}:{PORT}"))
    await rt.start()
    await asyncio.wait_for(rt.ports.mqtt.connected.wait(), 5)
    yield rt
    await rt.stop()


def test_topics() -> None:
    assert parse_topic("/key1/dev1/attrs") == ("key1", "dev1", None)
    assert parse_topic("key1/dev1/attrs/t") == ("key1", "dev1", "t")


async def test_sensor_to_ngsi_history_and_notification(node: CityBrain) -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=server.serve_forever, daemon=True).start()
    Receiver.got = []
    app = create_app(node, manage_runtime=False)
    try:
        await node.ports.devices.add(Device(
            device_id="aq-7", apikey="k3y", entity_type="AirQualityObserved", location=[116.1, 39.1],
            attributes=[Mapping(object_id="p", name="pm25"), Mapping(object_id="t", name="temperature")]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            sub = {"type": "Subscription", "entities": [{"type": "AirQualityObserved"}], "watchedAttributes": ["pm25"],
                   "notification": {"endpoint": {"uri": f"http://127.0.0.1:{server.server_port}/notify"},
                                    "format": "keyValues"}}
            assert (await c.post("/ngsi-ld/v1/subscriptions", json=sub)).status_code == 201
            start = time.monotonic()
            async with aiomqtt.Client(HOST, PORT) as pub:
                await pub.publish("/k3y/aq-7/attrs", json.dumps({"p": 42.5, "t": "21.5"}), qos=1)
            while time.monotonic() - start < 1.0:
                r = await c.get(f"/ngsi-ld/v1/entities/{EID}", params={"options": "keyValues"})
                if r.status_code == 200 and r.json().get("pm25") == 42.5:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - start
            assert elapsed < 1.0, f"observation took {elapsed:.2f}s to appear"
            assert r.json()["temperature"] == 21.5
            hist = (await c.get(f"/ngsi-ld/v1/temporal/entities/{EID}", params={"attrs": "pm25"})).json()
            assert [i["value"] for i in hist["pm25"]] == [42.5]
            for _ in range(100):
                if Receiver.got:
                    break
                await asyncio.sleep(0.02)
            assert Receiver.got and Receiver.got[0]["data"][0]["pm25"] == 42.5
    finally:
        server.shutdown()
        server.server_close()


async def test_unknown_device_and_malformed_payload_dead_lettered(node: CityBrain) -> None:
    await node.ports.devices.add(Device(device_id="d1", apikey="k", entity_type="WeatherObserved"))
    async with aiomqtt.Client(HOST, PORT) as pub:
        await pub.publish("/k/ghost/attrs", b'{"t": 1}', qos=1)
        await pub.publish("/k/d1/attrs", b"{oops", qos=1)
    for _ in range(100):
        letters = await node.store.deadletters()
        if len(letters) >= 2:
            break
        await asyncio.sleep(0.02)
    reasons = sorted(d.reason for d in letters)
    assert any("unknown device ghost" in r for r in reasons) and any("not valid JSON" in r for r in reasons)


async def test_stop_finishes_and_acknowledges_the_batch_in_flight(tmp_path: Path) -> None:
    """Stopping waits for the batch being stored, acknowledges it, then disconnects: the named session
    gets nothing again after a restart, and what was published while citybrain was down arrives then."""
    require_service("Mosquitto MQTT broker", HOST, PORT)
    url = f"mqtt://{HOST}:{PORT}?client_id=cb-stop-{uuid.uuid4().hex[:8]}"
    settings = Settings(store=str(tmp_path / "stop.db"), bus="memory", mqtt=url)
    eid = "urn:ngsi-ld:WeatherObserved:s1"
    rt = CityBrain(settings)
    await rt.start()
    await asyncio.wait_for(rt.ports.mqtt.connected.wait(), 5)
    await rt.ports.devices.add(Device(device_id="s1", apikey="ks", entity_type="WeatherObserved"))
    ingest = rt.ports.ingest
    real, gate, entered = ingest.submit, asyncio.Event(), asyncio.Event()

    async def held(items: list[Any], ctx: Any = None, source: str = "api") -> Any:
        entered.set()
        await gate.wait()
        return await real(items, ctx, source)

    ingest.submit = held
    async with aiomqtt.Client(HOST, PORT) as pub:
        await pub.publish("/ks/s1/attrs", json.dumps({"t": 1, "TimeInstant": "2026-01-01T00:00:00.000Z"}), qos=1)
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(rt.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stop must wait for the batch in flight"
    gate.set()
    await asyncio.wait_for(stopping, 15)

    async with aiomqtt.Client(HOST, PORT) as pub:  # while citybrain is down
        await pub.publish("/ks/s1/attrs", json.dumps({"t": 2, "TimeInstant": "2026-01-01T00:01:00.000Z"}), qos=1)
    rt = CityBrain(settings)
    await rt.start()
    try:
        for _ in range(250):
            if len(await rt.store.history(eid, "t")) >= 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert [h.value for h in await rt.store.history(eid, "t")] == [1, 2]
        assert rt.ports.mqtt.received == 1, "the batch stored before stop was acknowledged"
    finally:
        await rt.stop()


async def test_prefix_and_devices_provisioned_elsewhere(tmp_path: Path) -> None:
    require_service("Mosquitto MQTT broker", HOST, PORT)
    root = f"cbt/{uuid.uuid4().hex[:8]}"
    rt = CityBrain(Settings(store=str(tmp_path / "p.db"), bus="memory", mqtt=f"mqtt://{HOST}:{PORT}?prefix={root}"))
    await rt.start()
    try:
        await asyncio.wait_for(rt.ports.mqtt.connected.wait(), 5)
        # provisioned behind this process's back: entity and device document written to the store only
        eid = "urn:ngsi-ld:WeatherObserved:late-1"
        await rt.execute("entity.write", {"entity": {"id": eid, "type": "WeatherObserved"}, "mode": "upsert"})
        await rt.store.apply([PutDoc(COLLECTION, "kp/late-1", {
            "device_id": "late-1", "apikey": "kp", "entity_type": "WeatherObserved", "entity_id": eid,
            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]})])
        assert rt.ports.devices.find("kp", "late-1") is None
        async with aiomqtt.Client(HOST, PORT) as pub:
            await pub.publish("/kp/late-1/attrs", b'{"t": 1, "TimeInstant": "2026-01-01T00:00:00.000Z"}', qos=1)
            await pub.publish(f"{root}/kp/late-1/attrs",
                              b'{"t": 2, "TimeInstant": "2026-01-01T00:01:00.000Z"}', qos=1)
        for _ in range(250):
            if await rt.store.history(eid, "temperature"):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert [h.value for h in await rt.store.history(eid, "temperature")] == [2]  # only the prefix's topic
        assert await rt.store.deadletters() == []
        assert rt.ports.mqtt.received == 1
    finally:
        await rt.stop()


async def test_provisioning_is_a_command_every_process_follows(tmp_path: Path) -> None:
    """device.provision upserts the entity, stores the device and is recorded; another process's provisioning
    (its event on the bus) replaces this process's mapping at once, without a restart."""
    from citybrain.events import Event, encode_event
    from citybrain.mqtt.devices import PROVISIONED

    rt = CityBrain(Settings(store=str(tmp_path / "d.db"), bus="memory"))
    await rt.start()
    try:
        dev = {"device_id": "d1", "apikey": "k", "entity_type": "WeatherObserved",
               "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}
        added = await rt.ports.devices.add(msgspec.convert(dev, Device))
        assert added.entity_id and (await rt.store.get_entity(added.entity_id)) is not None
        assert (await rt.store.get_doc(COLLECTION, "k/d1")) is not None
        assert rt.ports.devices.find("k", "d1").attributes[0].name == "temperature"
        events = [e for e in await rt.store.events() if e.type == "command.device.provision"]
        assert len(events) == 1 and events[0].data["device_id"] == "d1"
        with pytest.raises(ValidationError):
            await rt.execute("device.provision", {**dev, "apikey": "bad key"})
        # the same device re-provisioned by another process: only its event reaches this one
        other = {**dev, "entity_id": added.entity_id,
                 "attributes": [{"object_id": "t", "name": "airTemperature", "type": "Number"}]}
        event = Event(type="command.device.provision", time=rt.now(), context=rt.context("elsewhere"), data=other)
        await rt.bus.publish(PROVISIONED, encode_event(event))
        await rt.bus.drain()  # type: ignore[attr-defined]
        assert rt.ports.devices.find("k", "d1").attributes[0].name == "airTemperature"
    finally:
        await rt.stop()
