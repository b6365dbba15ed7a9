"""Benchmark: dashboard page load on localhost with 10,000 sensors and 5,000 grid cells.

Builds the city directly through the store port (no replay), serves it with `citybrain serve`, and loads
the city view in Debian's Chromium (Playwright) three times: time from navigation start until the map
holds every cell and sensor (`body[data-ready]`), and until every panel is filled (`body[data-complete]`:
trend drawn, case board, alerts, ledger checkpoint, case and resource layers). Peer: the same page for the 288-cell demo city.
Writes bench/results/dashboard-<date>.json in the normalised {"name", "date", "figures"} shape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from citybrain.model.entity import Entity  # noqa: E402
from citybrain.store import UpsertEntity, open_store  # noqa: E402

NOW = "2026-01-01T00:00:00.000Z"


def square(lon: float, lat: float, d: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]}


async def build(path: str, cells: int, sensors: int) -> None:
    """Write a city with `cells` grid cells (50 communities) and `sensors` air-quality sensors."""
    store = open_store(path)
    await store.open()
    ops: list = []

    def ent(i: str, t: str, place: str | None, geo: dict, **attrs: object) -> Entity:
        a = {"name": {"type": "Property", "value": i.rsplit(":", 1)[-1]}}
        a.update({k: {"type": "Property", "value": v} for k, v in attrs.items()})
        return Entity(id=i, type=t, place=place, location=geo, attrs=a, created_at=NOW, modified_at=NOW)

    side = int(cells ** 0.5) + 1
    d = 0.01
    ops.append(UpsertEntity(ent("urn:ngsi-ld:City:b", "City", None, square(116, 39.5, side * d)), history=False))
    ops.append(UpsertEntity(ent("urn:ngsi-ld:District:b", "District", "urn:ngsi-ld:City:b",
                                square(116, 39.5, side * d)), history=False))
    ops.append(UpsertEntity(ent("urn:ngsi-ld:Subdistrict:b", "Subdistrict", "urn:ngsi-ld:District:b",
                                square(116, 39.5, side * d)), history=False))
    per = cells // 50
    for c in range(50):
        ops.append(UpsertEntity(ent(f"urn:ngsi-ld:Community:c{c}", "Community", "urn:ngsi-ld:Subdistrict:b",
                                    square(116, 39.5, side * d)), history=False))
    for g in range(cells):
        lon, lat = 116 + (g % side) * d, 39.5 + (g // side) * d
        ops.append(UpsertEntity(ent(f"urn:ngsi-ld:Grid:g{g}", "Grid", f"urn:ngsi-ld:Community:c{min(g // per, 49)}",
                                    square(lon, lat, d), population=1000), history=False))
    for s in range(sensors):
        g = s % cells
        lon, lat = 116 + (g % side) * d + d * (0.2 + 0.6 * (s // cells) / 3), 39.5 + (g // side) * d + d / 2
        ops.append(UpsertEntity(ent(f"urn:ngsi-ld:AirQualityObserved:s{s}", "AirQualityObserved", f"urn:ngsi-ld:Grid:g{g}",
                                    {"type": "Point", "coordinates": [lon, lat]}), history=False))
    for i in range(0, len(ops), 2000):
        await store.apply(ops[i:i + 2000])
    await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(store: str, demo: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "citybrain", "serve", "--auth", "off", "--port", str(port), "--store", store]
    if demo:
        cmd += ["--demo", "--no-replay"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/api/v1/map/places?level=Grid", timeout=2).json()["features"]:
                break
        except Exception:
            pass
        time.sleep(0.2)
    return proc, base


def load_times(base: str, runs: int) -> tuple[list[float], list[float]]:
    """Return per run the seconds until the map is ready and until every panel is filled (body[data-complete])."""
    from playwright.sync_api import sync_playwright

    out, complete = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for _ in range(runs + 1):  # the first load warms the server's caches and is not counted
            page = b.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            out.append(page.evaluate("performance.now()") / 1000)
            page.wait_for_selector("body[data-complete='1']", timeout=60000)
            complete.append(page.evaluate("Number(document.body.dataset.completeAt)") / 1000)
            page.close()
        b.close()
    return out[1:], complete[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--sensors", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.db")
        asyncio.run(build(big, args.cells, args.sensors))
        proc, base = serve(big, demo=False)
        try:
            ours, ours_all = load_times(base, args.runs)
        finally:
            proc.terminate()
        proc, base = serve(os.path.join(tmp, "demo.db"), demo=True)
        try:
            peer, peer_all = load_times(base, args.runs)
        finally:
            proc.terminate()
    o, p = statistics.median(ours), statistics.median(peer)
    oa, pa = statistics.median(ours_all), statistics.median(peer_all)
    doc = {"name": "dashboard", "date": date.today().isoformat(),
           "runs": {"ours": ours, "peer": peer, "ours_complete": ours_all, "peer_complete": peer_all},
           "figures": [{"figure": f"city view load, {args.cells} cells + {args.sensors} sensors (target < 2 s)",
                        "unit": "s", "ours": round(o, 3), "peer": round(p, 3),
                        "peer_name": "the same page for the 288-cell demo city", "ratio": round(o / p, 2),
                        "better": "lower"},
                       {"figure": f"city view, every panel filled, {args.cells} cells + {args.sensors} sensors",
                        "unit": "s", "ours": round(oa, 3), "peer": round(pa, 3),
                        "peer_name": "the same page for the 288-cell demo city", "ratio": round(oa / pa, 2),
                        "better": "lower"}]}
    out = ROOT / "bench" / "results" / f"dashboard-{doc['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print("| figure | ours | peer | ratio |\n|---|---:|---:|---:|")
    for f in doc["figures"]:
        print(f"| {f['figure']} | {f['ours']:.3f} s | {f['peer']:.3f} s | {f['ratio']:.2f} |")


if __name__ == "__main__":
    main()
