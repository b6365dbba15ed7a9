"""MQTT device ingest through the real Mosquitto: IoT Agent JSON topics → state, history, NGSI-LD, notifications.

A provisioned sensor publishing on /<apikey>/<device_id>/attrs appears in the NGSI-LD API and its history
within 1 s and a subscription notification reaches a local HTTP endpoint; an unknown device and a
malformed payload are dead-lettered with the reason. 3 cases.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import aiomqtt
import httpx
import pytest
from services import require_service

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.mqtt.client import parse_topic
from citybrain.mqtt.devices import Device, Mapping
from citybrain.runtime import CityBrain

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
    await asyncio.wait_for(rt.services["mqtt"].connected.wait(), 5)
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
        await node.services["devices"].add(Device(
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


async def test_unknown_device_and_malformed_payload_dead_lettered(node: CityBrain) -> None:
    await node.services["devices"].add(Device(device_id="d1", apikey="k", entity_type="WeatherObserved"))
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
