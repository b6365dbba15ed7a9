"""Benchmark: cases filed and dispatched per second through the HTTP API, and alert-to-dispatch latency.

Peer measured in the same run: the same reports submitted straight to the runtime (no HTTP), so the ratio
shows what the API layer costs. Writes bench/results/cases-<date>.json. Run: .venv/bin/python bench/bench_cases.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from citybrain.api import app as app_module
from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain

CATEGORIES = ["C0110", "C0210", "E0102", "E0104", "E0201", "E0405", "E0406", "C0402", "E9901"]
CITY = "urn:ngsi-ld:City:bench"


def cell_box(i: int, j: int) -> dict[str, Any]:
    x, y = 116.0 + i * 0.05, 39.8 + j * 0.05
    return {"type": "Polygon", "coordinates": [[[x, y], [x + .05, y], [x + .05, y + .05], [x, y + .05], [x, y]]]}


async def build(rt: CityBrain, n: int = 8) -> None:
    """A city of n x n grid cells in 4 communities."""
    whole = {"type": "Polygon", "coordinates": [[[116, 39.8], [116.4, 39.8], [116.4, 40.2], [116, 40.2], [116, 39.8]]]}

    async def put(pid: str, ptype: str, parent: str | None, geo: dict[str, Any]) -> None:
        await rt.execute("entity.write", {"entity": {"id": pid, "type": ptype, "place": parent, "location": geo}})

    await put(CITY, "City", None, whole)
    await put("urn:ngsi-ld:District:b", "District", CITY, whole)
    await put("urn:ngsi-ld:Subdistrict:b", "Subdistrict", "urn:ngsi-ld:District:b", whole)
    for k in range(4):
        await put(f"urn:ngsi-ld:Community:b{k}", "Community", "urn:ngsi-ld:Subdistrict:b", whole)
    for i in range(n):
        for j in range(n):
            await put(f"urn:ngsi-ld:Grid:b{i}_{j}", "Grid", f"urn:ngsi-ld:Community:b{(i >= n // 2) + 2 * (j >= n // 2)}",
                      cell_box(i, j))


def reports(count: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{"category": rnd.choice(CATEGORIES), "channel": "grid", "lon": 116.0 + rnd.random() * 0.4,
             "lat": 39.8 + rnd.random() * 0.4, "description": f"report {i} near block {rnd.randint(1, 400)}"}
            for i in range(count)]


async def runtime(tmp: Path, name: str) -> CityBrain:
    settings = Settings(store=str(tmp / f"{name}.db"), bus="memory", extra={"cases": {"checker": False}})
    rt = CityBrain(settings, components=["citybrain.model.commands", "citybrain.cases"])
    await rt.start()
    await build(rt)
    return rt


async def through_api(tmp: Path, count: int, concurrency: int) -> dict[str, Any]:
    rt = await runtime(tmp, "api")
    saved = app_module.EXTENSIONS[:]
    app_module.EXTENSIONS[:] = ["citybrain.cases.api"]
    app = create_app(rt, manage_runtime=False)
    app_module.EXTENSIONS[:] = saved
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        async def one(body: dict[str, Any]) -> str:
            async with sem:
                r = await client.post("/api/v1/cases", json=body, headers={"x-citybrain-actor": "grid:bench"})
                assert r.status_code == 201, r.text
                return str(r.json()["state"])

        start = time.perf_counter()
        states = await asyncio.gather(*(one(b) for b in reports(count, 1)))
        took = time.perf_counter() - start
    await rt.stop()
    return {"cases": count, "seconds": round(took, 3), "per_second": round(count / took, 1),
            "dispatched": states.count("dispatched"), "command_centre_queue": states.count("filed")}


async def direct(tmp: Path, count: int, concurrency: int) -> dict[str, Any]:
    rt = await runtime(tmp, "direct")
    desk = rt.ports.cases
    sem = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            await desk.submit(body, rt.context("grid:bench"))

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in reports(count, 1)))
    took = time.perf_counter() - start
    await rt.stop()
    return {"cases": count, "seconds": round(took, 3), "per_second": round(count / took, 1)}


async def alert_latency(tmp: Path, count: int, rate: float) -> dict[str, Any]:
    """Publish alert.raised events at `rate`/s; time from publish to a dispatched task."""
    rt = await runtime(tmp, "alerts")
    sent: dict[str, float] = {}
    done: dict[str, float] = {}

    async def on_event(msg: Any) -> None:
        from citybrain.events import decode_event

        ev = decode_event(msg.data)
        if ev.data.get("step") == "dispatch":
            case = await rt.ports.cases.read(ev.data["case"])
            for src in case["sources"] if case else []:
                done.setdefault(src["ref"], time.perf_counter())

    await rt.bus.subscribe("cb.event.command.case.dispatch", on_event)
    rnd = random.Random(2)
    kinds = ["air.pollution", "flood.waterlogging", "traffic.congestion", "noise.night"]
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        aid = f"A{i}"
        sent[aid] = time.perf_counter()
        await rt.emit("alert.raised", {"alert_id": aid, "category": rnd.choice(kinds), "severity": "high",
                                       "place": f"urn:ngsi-ld:Grid:b{rnd.randrange(8)}_{rnd.randrange(8)}",
                                       "description": "bench", "rule": "bench"}, record=False)
    drain = getattr(rt.bus, "drain", None)
    if drain is not None:
        await drain()
    await asyncio.sleep(0.2)
    await rt.stop()
    lat = sorted((done[a] - sent[a]) * 1000 for a in done if a in sent)
    # alerts of one category in one community join the open case: only the opening alert waits for a dispatch
    return {"alerts": count, "rate_per_s": rate, "opened_and_dispatched": len(lat),
            "p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2) if lat else None}


PM25_RULE = """rules:
  - id: pm25
    name: PM2.5 over 150
    category: air.pollution
    quantity: pm25
    levels: {blue: {above: 150}}
"""


async def observation_latency(tmp: Path, rate: int, seconds: float, communities: int = 40) -> dict[str, Any]:
    """Full node (rules, alerts, cases …): background observations at `rate`/s; now and then one sensor in a
    fresh community crosses the PM2.5 threshold. Latency: ingest call of that observation -> task dispatched."""
    from citybrain.clock import iso

    rules = tmp / "rules.yaml"
    rules.write_text(PM25_RULE, encoding="utf-8")
    settings = Settings(store=str(tmp / "full.db"), bus="memory",
                        extra={"rules_file": str(rules), "detectors": False, "cases": {"checker": False}})
    rt = CityBrain(settings)
    await rt.start()
    await rt.execute("entity.write", {"entity": {"id": CITY, "type": "City"}})
    await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:District:o", "type": "District", "place": CITY}})
    await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:Subdistrict:o", "type": "Subdistrict",
                                                 "place": "urn:ngsi-ld:District:o"}})
    for k in range(communities):
        await rt.execute("entity.write", {"entity": {"id": f"urn:ngsi-ld:Community:o{k}", "type": "Community",
                                                     "place": "urn:ngsi-ld:Subdistrict:o"}})
        await rt.execute("entity.write", {"entity": {"id": f"urn:ngsi-ld:Grid:o{k}", "type": "Grid",
                                                     "place": f"urn:ngsi-ld:Community:o{k}"}})
        await rt.execute("entity.write", {"entity": {"id": f"urn:ngsi-ld:AirQualityObserved:o{k}",
                                                     "type": "AirQualityObserved", "place": f"urn:ngsi-ld:Grid:o{k}"}})
    ingest = rt.ports.ingest
    triggered: dict[str, float] = {}
    dispatched: dict[str, float] = {}

    async def on_dispatch(msg: Any) -> None:
        from citybrain.events import decode_event

        place = decode_event(msg.data).data.get("place")
        if place:
            dispatched.setdefault(place, time.perf_counter())

    await rt.bus.subscribe("cb.event.command.case.dispatch", on_dispatch)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    every = max(1, int(seconds / tick) // communities)
    start = time.perf_counter()
    sent = 0
    for step in range(int(seconds / tick)):
        await asyncio.sleep(max(0.0, start + step * tick - time.perf_counter()))
        now = iso(rt.clock.now())
        batch = [{"entity": f"urn:ngsi-ld:AirQualityObserved:o{(sent + i) % communities}", "attr": "pm25",
                  "value": 20.0, "observedAt": now} for i in range(per_tick)]
        sent += per_tick
        k = step // every
        if step % every == 0 and k < communities:
            batch = [b for b in batch if not str(b["entity"]).endswith(f":o{k}")]
            batch.append({"entity": f"urn:ngsi-ld:AirQualityObserved:o{k}", "attr": "pm25", "value": 400.0,
                          "observedAt": now})
            triggered[f"urn:ngsi-ld:Grid:o{k}"] = time.perf_counter()
        await ingest.submit(batch)
    took = time.perf_counter() - start
    drain = getattr(rt.bus, "drain", None)
    if drain is not None:
        await drain()
    await asyncio.sleep(0.5)
    await rt.stop()
    lat = sorted((dispatched[p] - t) * 1000 for p, t in triggered.items() if p in dispatched)
    return {"observations": sent, "achieved_rate_per_s": round(sent / took), "triggers": len(triggered),
            "dispatched": len(lat), "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else None}


async def main(count: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cases-") as d:
        tmp = Path(d)
        api = await through_api(tmp, count, concurrency)
        peer = await direct(tmp, count, concurrency)
        alerts = await alert_latency(tmp, 200, 100.0)
        observed = await observation_latency(tmp, 1000, 10.0)
    return {"benchmark": "cases", "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "cpu": platform.machine(), "system": platform.system()},
            "store": "sqlite", "concurrency": concurrency, "api": api, "peer_direct_runtime": peer,
            "api_over_direct": round(api["per_second"] / peer["per_second"], 3), "alert_to_dispatch": alerts,
            "observation_to_dispatch": observed,
            "note": "filed+dispatched = intake, file and dispatch commands, each committed with its event; "
                    "alert_to_dispatch starts at the alert event; observation_to_dispatch runs the whole node "
                    "(ingest, rules, alerts, cases) with background observations at 1,000/s"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    result = asyncio.run(main(args.cases, args.concurrency))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / f"cases-{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
