"""Benchmark: the NGSI-LD HTTP API of a running citybrain (uvicorn, 1 worker, SQLite store).

Usage: python bench/bench_ngsi.py [--entities 1000] [--requests 20000] [--concurrency 32] [--batch 10000]
                                  [--runs 3]

citybrain runs as a subprocess (`uvicorn` with one worker, a temporary SQLite store, in-process bus, auth off,
and the per-client write rate limit lifted: wrk is a single client, and the 2,000 writes/s default is a policy).
The client is `wrk` (1 thread, `--concurrency` keep-alive connections, `--seconds` per run) when installed
(apt-get install wrk), else httpx.AsyncClient with `--concurrency` requests in flight in its own process
(which itself tops out at a few hundred requests/s); on this 2-core box client and server share the CPUs.

- single-attribute PATCH updates/s: PATCH /entities/{id}/attrs/speed with {"value": n} over `--entities`
  entities (every update is a durable write: state + history + event);
- entity GET/s: GET /entities/{id} (normalized, application/json);
- batch upsert of `--batch` entities: POST /entityOperations/upsert in one request, entities/s.

No peer runs here (Orion-LD needs MongoDB and Docker); the anchors are FIWARE's published Orion-LD load tests:
above 3,500 updates/s (Orion-LD with 2 CPUs and an 8-CPU MongoDB) and above 4,200 reads/s; batch upsert:
~2,000 entities in ~15 s, batches capped at 1,000 entities. Median of `--runs`. JSON goes to
bench/results/ngsi-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from procs import stop_process  # bench/procs.py (bench/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
BASE = "/ngsi-ld/v1"
ORION_ANCHOR_UPDATES = ("Orion-LD load test (FIWARE, 2 CPUs + 8-CPU MongoDB): > 3,500 updates/s "
                        "(github.com/FIWARE/context.Orion-LD, doc/manuals-ld/performance-tests)")
ORION_ANCHOR_READS = ("Orion-LD load test (FIWARE): > 4,200 entity reads/s "
                      "(github.com/FIWARE/context.Orion-LD, doc/manuals-ld/performance-tests)")
ORION_ANCHOR_BATCH = ("Orion-LD: ~15 s for 2,000 entities (~133 entities/s), batch operations capped at "
                      "1,000 entities per request")

APP = """
import os
from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain
settings = Settings.from_env(store=os.environ["BENCH_STORE"], bus="memory")
settings.auth = "off"
settings.max_body_bytes = 64 * 1024 * 1024
app = create_app(CityBrain(settings))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """citybrain's app under uvicorn (1 worker) as a subprocess on a temporary store."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cb-bench-ngsi-"))
        self.port = free_port()
        (self.tmp / "bench_app.py").write_text(APP)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        # wrk is one client: the per-client write rate limit (2,000/s by default, a policy knob) is lifted
        env.update(BENCH_STORE=str(self.tmp / "cb.db"), CITYBRAIN_AUTH="off", CITYBRAIN_ADMISSION_CLIENT_RATE="0",
                   PYTHONPATH=f"{self.tmp}{os.pathsep}{ROOT}")
        self.log = open(self.tmp / "uvicorn.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--log-level", "warning", "--no-access-log"],
            cwd=self.tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {(self.tmp / 'uvicorn.log').read_text()}")
            try:
                if httpx.get(self.url("/-/health"), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("citybrain did not become healthy")
            time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        stop_process(self.proc, self.log)
        shutil.rmtree(self.tmp, ignore_errors=True)


def vehicle(i: int, prefix: str = "V") -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Vehicle:{prefix}{i:06d}", "type": "Vehicle",
            "speed": {"type": "Property", "value": float(i % 120), "observedAt": "2024-01-01T00:00:00Z"},
            "brandName": {"type": "Property", "value": "Acme"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2.35 + i * 1e-5, 48.85]}}}


async def hammer(base: str, n: int, conc: int, make: Any) -> float:
    """Send n requests, conc in flight; return requests/s (every answer must be 2xx)."""
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        it = iter(range(n))
        bad: list[str] = []

        async def worker() -> None:
            for i in it:
                method, path, body = make(i)
                r = await client.request(method, path, content=body,
                                         headers={"Content-Type": "application/json"} if body else None)
                if r.status_code >= 300:
                    bad.append(f"{r.status_code} {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(min(conc, 8))))  # warm the connections
        it = iter(range(n))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        took = time.perf_counter() - t0
        if bad:
            raise RuntimeError(f"{len(bad)} failed requests, e.g. {bad[0]}")
        return n / took


def client_main(args: argparse.Namespace) -> None:
    """Run one measurement in this (client) process and print the rate."""
    ents = args.entities

    def patch(i: int) -> tuple[str, str, bytes]:
        return "PATCH", f"{BASE}/entities/urn:ngsi-ld:Vehicle:V{i % ents:06d}/attrs/speed", \
            json.dumps({"value": float(i % 200)}).encode()

    def get(i: int) -> tuple[str, str, None]:
        return "GET", f"{BASE}/entities/urn:ngsi-ld:Vehicle:V{i % ents:06d}", None

    make = patch if args.client == "patch" else get
    print(asyncio.run(hammer(args.base, args.requests, args.concurrency, make)))


WRK_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("urn:ngsi-ld:Vehicle:V%06d", counter % ENTITIES)
  if KIND == "patch" then
    return wrk.format("PATCH", "/ngsi-ld/v1/entities/" .. id .. "/attrs/speed",
      {["Content-Type"] = "application/json"}, '{"value": ' .. (counter % 200) .. '}')
  end
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. id)
end
"""


def measure_wrk(base: str, kind: str, args: argparse.Namespace) -> float:
    """Measure with wrk (1 thread, `--concurrency` connections, `--seconds`); every answer must be 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'KIND = "{kind}"\nENTITIES = {args.entities}\n' + WRK_LUA)
    out = subprocess.run(["wrk", "-t1", f"-c{args.concurrency}", f"-d{args.seconds}s", "-s", f.name, base],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"{kind}: wrk saw failed requests:\n{out}")
    return float(next(ln for ln in out.splitlines() if ln.startswith("Requests/sec:")).split()[1])


def measure(base: str, kind: str, args: argparse.Namespace) -> float:
    if shutil.which("wrk") and not args.httpx:
        return measure_wrk(base, kind, args)
    out = subprocess.run([sys.executable, __file__, "--client", kind, "--base", base, "--entities",
                          str(args.entities), "--requests", str(args.requests), "--concurrency",
                          str(args.concurrency)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def batch_upsert(srv: Server, n: int, run: int) -> float:
    body = json.dumps([vehicle(i, f"B{run}x") for i in range(n)]).encode()
    t0 = time.perf_counter()
    r = httpx.post(srv.url(f"{BASE}/entityOperations/upsert"), content=body,
                   headers={"Content-Type": "application/json"}, timeout=600)
    took = time.perf_counter() - t0
    if r.status_code not in (201, 204):
        raise RuntimeError(f"batch upsert: {r.status_code} {r.text[:300]}")
    count = httpx.get(srv.url(f"{BASE}/entities"), params={"type": "Vehicle", "idPattern": f"B{run}x",
                                                           "count": "true", "limit": 0}).headers
    if int(count["NGSILD-Results-Count"]) != n:
        raise RuntimeError(f"batch upsert stored {count['NGSILD-Results-Count']} of {n}")
    return n / took


def write_results(name: str, figures: list[dict[str, Any]]) -> Path:
    date = dt.date.today().isoformat()
    out = ROOT / "bench" / "results" / f"{name}-{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": name, "date": date, "figures": figures}, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="duration of a wrk measurement")
    ap.add_argument("--httpx", action="store_true", help="use the httpx client even if wrk is installed")
    ap.add_argument("--client", choices=["patch", "get"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args)
        return

    runs: dict[str, list[float]] = {"patch": [], "get": [], "batch": []}
    srv = Server()
    try:
        for start in range(0, args.entities, 1000):
            chunk = [vehicle(i) for i in range(start, min(start + 1000, args.entities))]
            httpx.post(srv.url(f"{BASE}/entityOperations/upsert"), content=json.dumps(chunk),
                       headers={"Content-Type": "application/json"}, timeout=120).raise_for_status()
        for _ in range(args.runs):
            runs["patch"].append(measure(srv.url(""), "patch", args))
            runs["get"].append(measure(srv.url(""), "get", args))
        for r in range(args.runs):
            runs["batch"].append(batch_upsert(srv, args.batch, r))
    finally:
        srv.stop()

    def fig(figure: str, unit: str, key: str, anchor: str) -> dict[str, Any]:
        return {"figure": figure, "unit": unit, "ours": round(statistics.median(runs[key]), 1), "peer": None,
                "peer_name": "Orion-LD (published figure, not run here)", "ratio": None, "anchor": anchor}

    figures = [
        fig(f"single-attribute PATCH, {args.concurrency} concurrent", "updates/s", "patch", ORION_ANCHOR_UPDATES),
        fig(f"entity GET, {args.concurrency} concurrent", "reads/s", "get", ORION_ANCHOR_READS),
        fig(f"batch upsert of {args.batch:,} entities (one request)", "entities/s", "batch", ORION_ANCHOR_BATCH),
    ]
    print("| figure | unit | ours (median) | anchor |")
    print("|---|---|---:|---|")
    for f in figures:
        print(f"| {f['figure']} | {f['unit']} | {f['ours']:,.0f} | {f['anchor']} |")
    print()
    for key, values in runs.items():
        print(f"- {key} runs: {', '.join(f'{v:,.0f}' for v in values)}")
    client = "wrk" if shutil.which("wrk") and not args.httpx else "httpx.AsyncClient"
    print(f"\nclient: {client}; {os.cpu_count()} CPUs; results: {write_results('ngsi', figures).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
