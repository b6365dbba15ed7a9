"""Alerts: grouping, de-duplication, escalation, suppression, the lifecycle commands, the API and the SSE stream."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from risk.test_risk import ingest, make_city, obs  # type: ignore[import-not-found]

from citybrain.alerts.api import sse
from citybrain.api import create_app
from citybrain.bus import Message
from citybrain.errors import Conflict, NotFound

RULES = """rules:
  - id: rain
    name: Rain test
    category: flood.rainstorm
    quantity: precipitation
    levels: {blue: {above: 10}, orange: {above: 30}, red: {above: 60}}
"""


async def test_one_alert_per_community_with_members_and_escalation(tmp_path: Path) -> None:
    rt = await make_city(tmp_path, RULES, alert_resolve_after=3600)
    try:
        raised: list[dict] = []

        async def on_event(msg: Message) -> None:
            raised.append({"subject": msg.subject, **orjson.loads(msg.data)["data"]})

        await rt.bus.subscribe("cb.event.alert.>", on_event)
        await ingest(rt, [obs("WeatherObserved", c, "precipitation", 15) for c in ("dense", "sparse", "mid")])
        await ingest(rt, [obs("WeatherObserved", "dense", "precipitation", 16, "2016-07-20T00:10:00Z")])  # same level
        await rt.bus.drain()
        book = rt.ports.alerts
        assert len(book.open) == 1 and book.raised == 1
        alert = next(iter(book.open.values()))
        assert alert["community"] == "urn:ngsi-ld:Community:c1" and len(alert["members"]) == 3
        assert alert["warningLevel"] == "blue" and alert["severity"] == "low" and alert["rule"] == "rain"
        first = raised[0]
        assert first["subject"] == "cb.event.alert.raised"
        assert {"alert_id", "category", "place", "community", "severity", "description", "rule"} <= set(first)
        assert first["place"].startswith("urn:ngsi-ld:Grid:") and first["category"] == "flood.rainstorm"
        assert "precipitation = 15" in first["description"]
        await ingest(rt, [obs("WeatherObserved", "mid", "precipitation", 70, "2016-07-20T00:20:00Z")])
        await rt.bus.drain()
        assert alert["warningLevel"] == "red" and alert["severity"] == "critical"
        assert [e["subject"] for e in raised] == ["cb.event.alert.raised", "cb.event.alert.escalated"]
        # everything clears; one hour later (data time) the alert resolves itself
        await ingest(rt, [obs("WeatherObserved", c, "precipitation", 0, "2016-07-20T01:00:00Z")
                          for c in ("dense", "sparse", "mid")])
        await rt.bus.drain()
        assert alert["status"] == "raised" and alert["clearedAt"]
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 10, "2016-07-20T02:00:00Z")])
        await rt.bus.drain()
        assert alert["status"] == "resolved" and not book.open
        assert raised[-1]["subject"] == "cb.event.alert.resolved"
        await book.outbox.flush()
        stored = await rt.store.get_doc("alerts", alert["id"])
        assert stored is not None and stored.data["status"] == "resolved" and stored.data["validTo"]
    finally:
        await rt.stop()


async def test_lifecycle_commands_and_suppression(tmp_path: Path) -> None:
    rt = await make_city(tmp_path, RULES)
    try:
        window = await rt.execute("alert.suppress", {"target": "urn:ngsi-ld:Grid:sparse", "from": "2016-07-20T00:00:00Z",
                                                     "until": "2016-07-20T06:00:00Z", "reason": "gauge cleaning"})
        assert window["target"] == "urn:ngsi-ld:Grid:sparse"
        await ingest(rt, [obs("WeatherObserved", "sparse", "precipitation", 50)])
        await rt.bus.drain()
        book = rt.ports.alerts
        assert book.raised == 0 and book.suppressed == 1
        await ingest(rt, [obs("WeatherObserved", "sparse", "precipitation", 50, "2016-07-20T07:00:00Z")])
        await rt.bus.drain()
        assert book.raised == 1  # after the window the same data raises
        alert_id = next(iter(book.open.values()))["id"]
        acked = await rt.execute("alert.ack", {"alert_id": alert_id, "note": "seen"})
        assert acked["status"] == "acknowledged"
        esc = await rt.execute("alert.escalate", {"alert_id": alert_id, "to": "urn:ngsi-ld:Organization:water"})
        assert esc["status"] == "escalated" and esc["warningLevel"] == "red"
        await rt.execute("alert.link", {"alert_id": alert_id, "case_id": "case-1"})
        done = await rt.execute("alert.resolve", {"alert_id": alert_id, "note": "pumped"})
        assert done["status"] == "resolved" and [h["status"] for h in done["history"]] == [
            "raised", "acknowledged", "escalated", "resolved"]
        with pytest.raises(Conflict):
            await rt.execute("alert.ack", {"alert_id": alert_id})
        with pytest.raises(NotFound):
            await rt.execute("alert.ack", {"alert_id": "urn:ngsi-ld:Alert:none"})
        with pytest.raises(NotFound):
            await rt.execute("alert.suppress", {"target": "urn:ngsi-ld:Grid:nowhere", "until": "2030-01-01T00:00:00Z"})
        await book.outbox.flush()
        events = [e.type for e in await rt.store.events(type_prefix="alert.")]
        assert events == ["alert.raised", "alert.escalated", "alert.resolved"]
    finally:
        await rt.stop()


async def test_api_and_sse_stream(tmp_path: Path) -> None:
    rt = await make_city(tmp_path, RULES)
    app = create_app(rt, manage_runtime=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            import asyncio

            queue: asyncio.Queue[bytes] = asyncio.Queue()

            async def into(msg: Message) -> None:
                queue.put_nowait(msg.data)

            sub = await rt.bus.subscribe("cb.event.alert.>", into)
            await ingest(rt, [obs("WeatherObserved", "mid", "precipitation", 35)])
            await rt.bus.drain()
            frames = [f async for f in sse(queue, sub, 1, 5.0)]
            assert frames[0] == b": connected\n\n" and b"event: alert.raised" in frames[1]
            listed = (await client.get("/api/v1/alerts", params={"status": "open"})).json()
            assert len(listed) == 1 and listed[0]["warningLevel"] == "orange"
            in_place = (await client.get("/api/v1/alerts", params={"place": "urn:ngsi-ld:Community:c1"})).json()
            assert len(in_place) == 1
            one = (await client.get(f"/api/v1/alerts/{listed[0]['id']}")).json()
            assert one["members"][0]["evidence"] == ["precipitation = 35 ≥ 30"]
            r = await client.post(f"/api/v1/alerts/{listed[0]['id']}/ack", json={"note": "on it"})
            assert r.status_code == 200 and r.json()["status"] == "acknowledged"
            assert (await client.get("/api/v1/alerts/urn:ngsi-ld:Alert:x")).status_code == 404
            risk = (await client.get("/api/v1/risk")).json()
            assert risk and risk[0]["level"] != "none"
            one_risk = (await client.get("/api/v1/risk/urn:ngsi-ld:Grid:mid")).json()
            assert one_risk["factors"][0]["factor"] == "hazard"
            district = (await client.get("/api/v1/risk/urn:ngsi-ld:District:d")).json()
            assert district["at_risk"]
            rules = (await client.get("/api/v1/rules")).json()
            assert rules["rules"][0]["id"] == "rain"
    finally:
        await rt.stop()
