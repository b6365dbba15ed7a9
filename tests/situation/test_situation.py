"""Situation: latest values, rolling windows, freshness and coverage per place; pushed on cb.situation.<level>."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
from risk.test_risk import ingest, make_city, obs  # type: ignore[import-not-found]

from citybrain.api import create_app
from citybrain.bus import Message
from citybrain.windows import Rolling


def test_rolling_window_is_bucketed_and_slides() -> None:
    roll = Rolling(3600)
    for minute in range(0, 120, 10):
        roll.add(minute * 60.0, float(minute))
    n, total, hi, lo = roll.stats(119 * 60.0)
    assert n == 6 and hi == 110 and lo == 60 and total == sum(range(60, 120, 10))
    roll.add(30 * 60.0, 999.0)  # late and outside the window: ignored
    assert roll.stat("max", 119 * 60.0) == 110
    assert len(roll.buckets) <= 25


async def test_situation_per_place_and_push(tmp_path: Path) -> None:
    rt = await make_city(tmp_path, situation_throttle=0.05)
    pushed: list[dict] = []

    async def on_push(msg: Message) -> None:
        pushed.append({"subject": msg.subject, **orjson.loads(msg.data)})

    await rt.bus.subscribe("cb.situation.>", on_push)
    app = create_app(rt, manage_runtime=False)
    try:
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 100, "2016-07-19T23:30:00Z"),
                          obs("AirQualityObserved", "dense", "pm25", 50),
                          obs("AirQualityObserved", "sparse", "pm25", 20)])
        await rt.bus.drain()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = (await client.get("/api/v1/situation/urn:ngsi-ld:Community:c1")).json()
            pm = r["quantities"]["pm25"]
            assert pm["latest"] in (50, 20) and pm["sensors"] == 2 and pm["mean_now"] == 35
            assert pm["1h"]["max"] == 100 and pm["1h"]["n"] == 3
            assert r["coverage"] == {"cells": 3, "live_cells": 2, "share": 0.667}
            assert r["freshness"]["last_observed_s_ago"] == 0
            cell = (await client.get("/api/v1/situation/urn:ngsi-ld:Grid:sparse")).json()
            assert cell["quantities"]["pm25"]["latest"] == 20
            assert (await client.get("/api/v1/situation/urn:ngsi-ld:Grid:nope")).status_code == 404
            overview = (await client.get("/api/v1/situation", params={"level": "community"})).json()
            assert overview["places"][0]["place"] == "urn:ngsi-ld:Community:c1"
        subjects = {p["subject"] for p in pushed}
        assert {"cb.situation.grid", "cb.situation.community", "cb.situation.city"} <= subjects
        assert len([p for p in pushed if p["place"] == "urn:ngsi-ld:Community:c1"]) == 1  # throttled: one push
        rt.clock.advance(3 * 3600)  # type: ignore[attr-defined]
        stale = rt.ports.situation.summary("urn:ngsi-ld:Community:c1")
        assert stale["coverage"]["live_cells"] == 0 and stale["freshness"]["last_observed_s_ago"] == 10800
    finally:
        await rt.stop()
