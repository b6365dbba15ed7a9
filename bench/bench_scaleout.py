"""Benchmark: one node as 1, 2 and 3 `citybrain serve` processes on PostgreSQL + NATS JetStream.

Usage: python bench/bench_scaleout.py [--processes 1,2,3] [--seconds 6] [--connections 24] [--batch 50]
                                      [--vehicles 1000] [--runs 2]

For each process count: a fresh PostgreSQL schema and a fresh JetStream stream, lease bucket, subject prefix
and federation prefix; process 1 loads the tiny demo city (`serve --demo --no-replay --size tiny`) and 1,000
NGSI-LD Vehicles, then the others start (every process is `python -m citybrain serve`, configured only by
CITYBRAIN_* variables, auth off, the per-client write limit lifted since wrk is one client). Then, with wrk
(`--connections` in total, shared out evenly over the processes, one wrk per process, run at the same time):

- observations/s: POST /api/v1/observations, `--batch` observations per request, each with a new observedAt
  (every one is a new history row, published on cb.obs.<partition>);
- NGSI-LD PATCH /entities/{id}/attrs/speed and GET /entities/{id} per second (as in bench_ngsi.py).

Every answer must be 2xx. Measuring starts once the pipeline partitions are shared out (/-/cluster). The
same-run peer is the single process: figures for 2 and 3 processes are given as ratios to it. With more than
one process each figure is also measured with all the load sent to process 1, to see what the others spend
on operations they did not serve. During each measurement the CPU seconds of every citybrain process, of the
PostgreSQL backends serving them (by application_name), of the NATS server and of wrk are read from /proc,
and the machine's busy time from /proc/stat (what is left is other load on this shared machine). CPU
milliseconds per operation say where the time goes; with what one more process adds to an operation (from the
runs with all load on process 1) they project what more cores would give (printed as a projection: nothing
here runs on more than this machine's cores).
JSON and markdown go to bench/results/scaleout-<date>.json / .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from procs import stop_process  # bench/procs.py (bench/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("CITYBRAIN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("CITYBRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222")
TICK = os.sysconf("SC_CLK_TCK")
NGSI = "/ngsi-ld/v1"
KINDS = {"obs": ("observations/s", "POST /api/v1/observations"),
         "patch": ("updates/s", "NGSI-LD PATCH /entities/{id}/attrs/speed"),
         "get": ("reads/s", "NGSI-LD GET /entities/{id}")}

WRK_LUA = """
counter = 0
local sensors = {SENSORS}
request = function()
  counter = counter + 1
  if KIND == "obs" then
    -- BATCH observations, each a new second of recorded time: a new history row every time
    local parts = {}
    for j = 1, BATCH do
      local n = counter * BATCH + j
      local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", BASE + n)
      parts[j] = string.format('{"entity":"%s","attr":"pm25","value":%d,"observedAt":"%s"}',
                               sensors[(n % #sensors) + 1], n % 300, ts)
    end
    return wrk.format("POST", "/api/v1/observations", {["Content-Type"] = "application/json"},
                      "[" .. table.concat(parts, ",") .. "]")
  end
  local id = string.format("urn:ngsi-ld:Vehicle:V%06d", (OFFSET + counter) % VEHICLES)
  if KIND == "patch" then
    return wrk.format("PATCH", "/ngsi-ld/v1/entities/" .. id .. "/attrs/speed",
      {["Content-Type"] = "application/json"}, '{"value": ' .. (counter % 200) .. '}')
  end
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. id)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def machine_busy() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine since boot, over every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICK, sum(values) / TICK


def pids_named(name: str) -> list[int]:
    """Pids of processes whose command name is `name` (to read their CPU time; nothing is signalled)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def vehicle(i: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Vehicle:V{i:06d}", "type": "Vehicle",
            "speed": {"type": "Property", "value": float(i % 120), "observedAt": "2024-01-01T00:00:00Z"},
            "brandName": {"type": "Property", "value": "Acme"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [116.30 + i * 1e-5, 39.9]}}}


class Node:
    """One citybrain node of `n` processes, on its own PostgreSQL schema and JetStream stream."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.tag = uuid.uuid4().hex[:8]
        self.schema = f"bench_scaleout_{self.tag}"
        self.app_name = f"cb-scaleout-{self.tag}"
        self.stream = f"BENCHSO_{self.tag.upper()}"
        self.fed_prefix = f"bsofed{self.tag}"
        self.tmp = Path(tempfile.mkdtemp(prefix="cb-bench-scaleout-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.ports: list[int] = []
        opts = quote(f"-csearch_path={self.schema}", safe="")
        sep = "&" if "?" in PG_URL else "?"
        self.store_url = f"{PG_URL}{sep}options={opts}&application_name={self.app_name}"
        self.secret = secrets.token_urlsafe(32)

    def env(self, i: int, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        env.update({
            "PYTHONPATH": str(ROOT), "CITYBRAIN_STORE": self.store_url, "CITYBRAIN_BUS": NATS_URL,
            "CITYBRAIN_BUS_STREAM": self.stream, "CITYBRAIN_BUS_PREFIX": f"bso{self.tag}",
            "CITYBRAIN_FEDERATION_PREFIX": self.fed_prefix, "CITYBRAIN_NODE_ID": f"bench-{self.tag}",
            "CITYBRAIN_HOST": "127.0.0.1", "CITYBRAIN_PORT": str(port), "CITYBRAIN_PROCESS_ID": f"p{i}",
            "CITYBRAIN_AUTH": "off", "CITYBRAIN_JWT_SECRET": self.secret,
            "CITYBRAIN_LEDGER_KEY": str(self.tmp / "ledger.key"),
            # wrk is one client: the per-client write rate limit (2,000/s by default, a policy knob) is lifted
            "CITYBRAIN_ADMISSION_CLIENT_RATE": "0",
        })
        return env

    def create_schema(self) -> None:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")

    def start_process(self, i: int, demo: bool) -> None:
        port = free_port()
        log = open(self.tmp / f"p{i}.log", "wb")  # noqa: SIM115
        args = [sys.executable, "-m", "citybrain", "serve", "--log-format", "json"]
        if demo:
            args += ["--demo", "--no-replay", "--size", "tiny"]
        self.procs.append(subprocess.Popen(args, cwd=self.tmp, env=self.env(i, port), stdout=log,
                                           stderr=subprocess.STDOUT))
        self.logs.append(log)
        self.ports.append(port)
        self.wait_healthy(len(self.procs) - 1)

    def url(self, k: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[k]}{path}"

    def wait_healthy(self, k: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.procs[k].poll() is not None:
                raise RuntimeError(f"process {k + 1} exited:\n{(self.tmp / f'p{k + 1}.log').read_text()[-3000:]}")
            try:
                if httpx.get(self.url(k, "/-/health"), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {k + 1} did not become healthy")
            time.sleep(0.2)

    def start(self, vehicles: int) -> list[str]:
        """Start process 1 with the city, add the vehicles, start the others; return the sensor ids."""
        from citybrain.demo.city import demo_entities
        from citybrain.demo.layout import build_layout

        self.create_schema()
        self.start_process(1, demo=True)
        want = sum(len(level) for level in demo_entities(build_layout("tiny")))
        deadline = time.monotonic() + 180
        while sum(httpx.get(self.url(0, "/api/v1/stats"), timeout=30).json()["entities"].values()) < want:
            if time.monotonic() > deadline:
                raise RuntimeError("the demo city did not load within 180 s")
            time.sleep(0.5)
        for start in range(0, vehicles, 500):
            chunk = [vehicle(i) for i in range(start, min(start + 500, vehicles))]
            httpx.post(self.url(0, f"{NGSI}/entityOperations/upsert"), content=json.dumps(chunk),
                       headers={"Content-Type": "application/json"}, timeout=120).raise_for_status()
        sensors = [e["id"] for kind in ("AirQualityObserved", "WeatherObserved")
                   for e in httpx.get(self.url(0, "/api/v1/entities"), params={"type": kind, "limit": 1000},
                                      timeout=30).json()]
        if not sensors:
            raise RuntimeError("the demo city has no station sensors")
        for i in range(2, self.n + 1):
            self.start_process(i, demo=False)
        # every process must know the sensors and vehicles before it is measured
        for k in range(self.n):
            r = httpx.post(self.url(k, "/api/v1/observations"), timeout=30, json=[
                {"entity": sensors[0], "attr": "pm25", "value": 1.0, "observedAt": "2020-01-01T00:00:00Z"}])
            if r.status_code != 200:
                raise RuntimeError(f"process {k + 1} rejects a known sensor: {r.status_code} {r.text[:300]}")
            r = httpx.get(self.url(k, f"{NGSI}/entities/urn:ngsi-ld:Vehicle:V000000"), timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"process {k + 1} does not find a vehicle: {r.status_code} {r.text[:300]}")
        return sensors

    def cluster(self) -> list[dict[str, Any]]:
        """What each process says it runs (/-/cluster), or why it could not say."""
        out = []
        for k in range(self.n):
            try:
                r = httpx.get(self.url(k, "/-/cluster"), timeout=5)
                out.append(r.json() if r.status_code == 200 else {"status": r.status_code})
            except (httpx.HTTPError, ValueError) as exc:
                out.append({"error": repr(exc)})
        return out

    def settle(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until the partitions are shared out (each owned once, nobody above its share); return /-/cluster."""
        deadline = time.monotonic() + timeout
        while True:
            cluster = self.cluster()
            owned = [n for c in cluster for n in c.get("owned_partitions", [])]
            total = int(cluster[0].get("partitions", 0) or 0)
            share = -(-total // self.n) if total else 0
            if (total and sorted(owned) == list(range(total))
                    and all(len(c.get("owned_partitions", [])) <= share for c in cluster)):
                return cluster
            if time.monotonic() > deadline:
                print(f"   warning: partitions not shared out after {timeout:.0f} s: {cluster}", flush=True)
                return cluster
            time.sleep(0.5)

    def consumers(self) -> list[dict[str, Any]]:
        """The JetStream consumers on this node's stream: every one gets (and acks) each message it matches."""

        async def run() -> list[dict[str, Any]]:
            import nats

            nc = await nats.connect(NATS_URL, connect_timeout=5)
            try:
                infos = await nc.jetstream().consumers_info(self.stream)
                return sorted(({"name": i.name, "filter": i.config.filter_subject,
                                "durable": bool(i.config.durable_name)} for i in infos),
                              key=lambda c: (str(c["filter"]), str(c["name"])))
            finally:
                await nc.close()

        try:
            return asyncio.run(run())
        except Exception as exc:  # diagnostic only
            return [{"error": repr(exc)}]

    def stream_state(self) -> tuple[int, int]:
        """(messages, bytes) in this node's stream."""

        async def run() -> tuple[int, int]:
            import nats

            nc = await nats.connect(NATS_URL, connect_timeout=5)
            try:
                info = await nc.jetstream().stream_info(self.stream)
                return int(info.state.messages), int(info.state.bytes)
            finally:
                await nc.close()

        return asyncio.run(run())

    def pg_backends(self) -> list[int]:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                (self.app_name,)).fetchall()
        return [int(r[0]) for r in rows]

    def stop(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            stop_process(proc, log, wait=40)
        self.procs, self.logs = [], []
        import psycopg

        try:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        except psycopg.Error as exc:
            print(f"warning: could not drop schema {self.schema}: {exc}")
        asyncio.run(self._drop_streams())
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def _drop_streams(self) -> None:
        import nats

        nc = await nats.connect(NATS_URL, connect_timeout=5)
        try:
            js = nc.jetstream()
            for name in (self.stream, f"KV_{self.stream}_LEASES", f"{self.fed_prefix.upper()}_FED"):
                try:
                    await js.delete_stream(name)
                except Exception as exc:  # a stream this run never created
                    if "not found" not in str(exc).lower():
                        print(f"warning: could not delete stream {name}: {exc!r}")
        finally:
            await nc.close()


class Meter:
    """CPU seconds of every part between start() and stop(): citybrain processes, their PostgreSQL backends,
    the NATS server(s), and the whole machine (to see the load nobody here put on it)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def start(self) -> None:
        self.pg0 = {pid: cpu_seconds(pid) for pid in self.node.pg_backends()}
        self.nats_pids = pids_named("nats-server")
        self.nats0 = sum(cpu_seconds(p) for p in self.nats_pids)
        self.cb0 = [cpu_seconds(p.pid) for p in self.node.procs]
        self.busy0, self.total0 = machine_busy()
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        took = time.monotonic() - self.t0
        busy1, total1 = machine_busy()
        cb = [cpu_seconds(p.pid) - b for p, b in zip(self.node.procs, self.cb0, strict=True)]
        pg = sum(after - self.pg0.get(pid, 0.0) for pid, after in
                 ((pid, cpu_seconds(pid)) for pid in self.node.pg_backends()))
        nats = sum(cpu_seconds(p) for p in self.nats_pids) - self.nats0
        busy = (busy1 - self.busy0) / (total1 - self.total0) if total1 > self.total0 else 0.0
        return {"seconds": took, "citybrain": cb, "postgres": pg, "nats": nats,
                "machine_busy": busy, "machine_cores_busy": (busy1 - self.busy0) / took}


def run_wrk(node: Node, kind: str, args: argparse.Namespace, sensors: list[str], base_time: int,
            targets: list[int]) -> dict[str, Any]:
    """Run one wrk per target process at the same time (`--connections` shared out over them); return the
    summed rate and the CPU each part used."""
    conns = [args.connections // len(targets) + (1 if j < args.connections % len(targets) else 0)
             for j in range(len(targets))]
    scripts = []
    lua_sensors = "{" + ",".join(f'"{s}"' for s in sensors) + "}"
    for j, k in enumerate(targets):
        lua = node.tmp / f"wrk-{kind}-{k}.lua"
        # each wrk starts its recorded time far from the others': no two send the same (sensor, time)
        lua.write_text(f'KIND = "{kind}"\nBATCH = {args.batch}\nBASE = {base_time + j * 10_000_000}\n'
                       f"VEHICLES = {args.vehicles}\nOFFSET = {j * 7919}\n"
                       + WRK_LUA.replace("{SENSORS}", lua_sensors))
        scripts.append(lua)
    results: list[dict[str, Any]] = [{} for _ in targets]

    def one(j: int) -> None:
        err_path = node.tmp / f"wrk-{kind}-{j}.err"
        with err_path.open("wb") as err:
            proc = subprocess.Popen(["wrk", "-t1", f"-c{conns[j]}", f"-d{args.seconds}s", "--latency", "-s",
                                     str(scripts[j]), node.url(targets[j], "")], stdout=subprocess.PIPE, stderr=err)
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves: wait4 gives wrk's own CPU time
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stdout.close()
        results[j] = {"out": out.decode(), "err": err_path.read_text(errors="replace"), "code": proc.returncode,
                      "cpu": usage.ru_utime + usage.ru_stime}

    meter = Meter(node)
    meter.start()
    threads = [threading.Thread(target=one, args=(j,)) for j in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the pipeline may still be working through what was just stored (cb.obs backlog): the operations' cost
    # includes it, so the meter runs until the processes are idle again
    drain = wait_quiet(node)
    used = meter.stop()
    used["seconds_load"] = used["seconds"] - drain
    rate = 0.0
    latencies = []
    timeouts = requests = 0
    for j, res in enumerate(results):
        out = res["out"]
        if res["code"] != 0 or "Requests/sec:" not in out:
            raise RuntimeError(f"wrk against process {targets[j] + 1} failed: {res['err'][-500:]} {out[-500:]}")
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        failed = sum(int(x) for x in errors.groups()[:3]) if errors else 0
        timeouts += int(errors[4]) if errors else 0
        done = re.search(r"(\d+) requests in", out)
        requests += int(done[1]) if done else 0
        # every answer must be 2xx; a request still unanswered after wrk's 2 s is counted, not fatal (this machine
        # is shared), unless there are many
        if "Non-2xx" in out or failed:
            raise RuntimeError(f"{kind}: wrk saw failed requests at process {targets[j] + 1}:\n{out}")
        rate += float(next(ln for ln in out.splitlines() if ln.startswith("Requests/sec:")).split()[1])
        latencies.append(next((ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("50%")), ""))
    if timeouts > max(1, requests // 1000):
        raise RuntimeError(f"{kind}: {timeouts} of {requests} requests unanswered after 2 s")
    wrk = sum(r["cpu"] for r in results)
    per_request = args.batch if kind == "obs" else 1
    ops = rate * used["seconds_load"] * per_request
    cb = used["citybrain"]
    serving = sum(cb[k] for k in targets)
    others = [cb[k] for k in range(node.n) if k not in targets]
    ours_cores = (sum(cb) + used["postgres"] + used["nats"] + wrk) / used["seconds"]
    return {
        "kind": kind, "processes": node.n, "targets": [k + 1 for k in targets], "connections": conns,
        "seconds": round(used["seconds_load"], 2), "drain_s": round(drain, 2), "requests_per_s": round(rate, 1), "ops_per_s": round(rate * per_request, 1),
        "p50_latency": latencies, "timeouts": timeouts,
        "cpu_s": {"citybrain": [round(c, 3) for c in cb], "postgres": round(used["postgres"], 3),
                  "nats": round(used["nats"], 3), "wrk": round(wrk, 3)},
        "cpu_ms_per_op": {"citybrain": 1000 * sum(cb) / ops, "postgres": 1000 * used["postgres"] / ops,
                          "nats": 1000 * used["nats"] / ops, "wrk": 1000 * wrk / ops,
                          "serving": 1000 * serving / ops,
                          "each_other": 1000 * statistics.mean(others) / ops if others else None},
        "machine_busy": round(used["machine_busy"], 3),
        "other_load_cores": round(max(0.0, used["machine_cores_busy"] - ours_cores), 2),
    }


def wait_quiet(node: Node, timeout: float = 60.0, step: float = 0.5) -> float:
    """Wait until the citybrain processes use about their idle CPU again; return how long that took."""
    t0 = time.monotonic()
    limit = 0.05 * node.n + 0.05  # cores: idle is ~0.01-0.03 per process (lease rounds, followers)
    last = sum(cpu_seconds(p.pid) for p in node.procs)
    while time.monotonic() - t0 < timeout:
        time.sleep(step)
        now = sum(cpu_seconds(p.pid) for p in node.procs)
        if (now - last) / step < limit:
            return max(0.0, time.monotonic() - t0 - step)
        last = now
    print(f"   warning: the processes were still busy {timeout:.0f} s after the load stopped", flush=True)
    return time.monotonic() - t0


def idle_cpu(node: Node, seconds: float = 3.0) -> dict[str, Any]:
    """CPU the processes use with no requests (lease rounds, followers, timers)."""
    meter = Meter(node)
    meter.start()
    time.sleep(seconds)
    used = meter.stop()
    return {"citybrain_cores": [round(c / used["seconds"], 4) for c in used["citybrain"]],
            "postgres_cores": round(used["postgres"] / used["seconds"], 4)}


def measure(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start a node of n processes, measure every kind spread over all of them (and, with n > 1, sent to
    process 1 only: what the others spend on work they did not serve), stop it and drop its schema/streams."""
    node = Node(n)
    print(f"== {n} process{'es' if n > 1 else ''}: schema {node.schema}, stream {node.stream}", flush=True)
    try:
        t0 = time.monotonic()
        sensors = node.start(args.vehicles)
        started = round(time.monotonic() - t0, 1)
        cluster = node.settle()
        consumers = node.consumers()
        idle = idle_cpu(node)
        print(f"   {len(consumers)} JetStream consumers on the stream; idle CPU (cores) per process "
              f"{idle['citybrain_cores']}; leases: "
              + "; ".join(f"{c.get('process')}: jobs {c.get('jobs')}, partitions {c.get('owned_partitions')}"
                          for c in cluster), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        fanout: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        base = int(dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()) + n * 100_000_000
        for r in range(args.runs):
            for i, kind in enumerate(KINDS):
                when = base + r * 1_000_000_000 + i * 300_000_000
                before = node.stream_state()
                res = run_wrk(node, kind, args, sensors, when, list(range(n)))
                after = node.stream_state()
                ops = res["ops_per_s"] * res["seconds"]
                res["stream_bytes_per_op"] = round((after[1] - before[1]) / ops, 1) if ops else None
                res["stream_messages_per_op"] = round((after[0] - before[0]) / ops, 4) if ops else None
                runs[kind].append(res)
                print(f"   {kind:5s} all   {res['ops_per_s']:>9,.0f} {KINDS[kind][0]:15s} "
                      f"{_ms(res['cpu_ms_per_op'])}  busy {res['machine_busy']:.0%}, other load "
                      f"{res['other_load_cores']} cores, quiet {res['drain_s']} s after", flush=True)
                if n > 1:
                    res = run_wrk(node, kind, args, sensors, when + 150_000_000, [0])
                    fanout[kind].append(res)
                    print(f"   {kind:5s} to p1 {res['ops_per_s']:>9,.0f} {KINDS[kind][0]:15s} "
                          f"{_ms(res['cpu_ms_per_op'])}", flush=True)
        return {"processes": n, "start_s": started, "sensors": len(sensors), "cluster": cluster,
                "consumers": consumers, "idle": idle,
                "runs": runs, "fanout": fanout}
    finally:
        node.stop()


def _git(*args: str) -> str:
    got = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return got.stdout.strip()


def _ms(cpu: dict[str, Any]) -> str:
    return "ms/op " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items() if v is not None)


def med(runs: list[dict[str, Any]], key: str, part: str | None = None) -> float:
    values = [r[key][part] if part else r[key] for r in runs]
    return float(statistics.median(v for v in values if v is not None)) if values else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", default="1,2,3", help="process counts to measure (the first is the peer)")
    ap.add_argument("--seconds", type=int, default=6, help="duration of one wrk measurement")
    ap.add_argument("--connections", type=int, default=24, help="wrk connections in total, over the processes")
    ap.add_argument("--batch", type=int, default=50, help="observations per POST")
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=2, help="measurements of each figure (the median is reported)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk, or scripts/bench-deps.sh)")
    counts = [int(x) for x in args.processes.split(",") if x]
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = [measure(n, args) for n in counts]
    load_after = [round(x, 2) for x in os.getloadavg()]
    peer = results[0]
    peer_name = f"{peer['processes']} process{'es' if peer['processes'] > 1 else ''}, same run"

    figures = []
    table = ["| processes | figure | ops/s | × 1 process | citybrain CPU ms/op | PostgreSQL | NATS | wrk "
             "| idle again after (s) | machine busy | others' load (cores) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for kind, (unit, what) in KINDS.items():
            runs, base_runs = res["runs"][kind], peer["runs"][kind]
            ours, base = med(runs, "ops_per_s"), med(base_runs, "ops_per_s")
            cpu = {p: med(runs, "cpu_ms_per_op", p) for p in ("citybrain", "postgres", "nats", "wrk")}
            table.append(f"| {res['processes']} | {what} | {ours:,.0f} | {ours / base:.2f} | {cpu['citybrain']:.3f} "
                         f"| {cpu['postgres']:.3f} | {cpu['nats']:.3f} | {cpu['wrk']:.3f} | {med(runs, 'drain_s'):.1f} "
                         f"| {med(runs, 'machine_busy'):.0%} | {med(runs, 'other_load_cores'):.2f} |")
            if res is peer:
                continue
            figures.append({"figure": f"{what}, {res['processes']} processes ({args.connections} connections)",
                            "unit": unit, "ours": round(ours, 1), "peer": round(base, 1), "peer_name": peer_name,
                            "ratio": round(ours / base, 3), "better": "higher"})
            peer_cpu = med(base_runs, "cpu_ms_per_op", "citybrain")
            figures.append({"figure": f"citybrain CPU per operation, {what}, {res['processes']} processes",
                            "unit": "ms", "ours": round(cpu["citybrain"], 4), "peer": round(peer_cpu, 4),
                            "peer_name": peer_name, "ratio": round(cpu["citybrain"] / peer_cpu, 3) if peer_cpu else None,
                            "better": "lower"})

    fan = ["| processes | figure (all sent to process 1) | ops/s | ms/op on process 1 | ms/op on each other process |",
           "|---:|---|---:|---:|---:|"]
    for res in results[1:]:
        for kind, (_, what) in KINDS.items():
            runs = res["fanout"][kind]
            fan.append(f"| {res['processes']} | {what} | {med(runs, 'ops_per_s'):,.0f} "
                       f"| {med(runs, 'cpu_ms_per_op', 'serving'):.3f} | {med(runs, 'cpu_ms_per_op', 'each_other'):.3f} |")

    # Projection. A process is one event loop (at most one core). a = citybrain's CPU per operation on the single
    # process. b = what each further process adds to an operation, from the runs with all load on process 1: their
    # total CPU per operation (process 1 and the others together, so the pipeline work that moved to the others'
    # partitions is not counted twice) minus a, per extra process. Those runs keep one process busy, so they
    # suffer less from N processes sharing 2 cores than the runs spread over all of them, whose CPU per operation
    # also grows with the contention. N processes on N cores then give about N·1000/(a + b·(N − 1)) ops/s, never
    # more than 1000/b. PostgreSQL and NATS: operations per core of theirs at the single process's cost.
    sizes = (2, 4, 8, 16)
    projection = ["| figure | a (ms/op) | b (ms/op per extra process) | " + " | ".join(f"{n} processes" for n in sizes)
                  + " | per PostgreSQL core | per NATS core |", "|---|---:|---:|" + "---:|" * (len(sizes) + 2)]
    proj: dict[str, Any] = {}
    for kind, (_, what) in KINDS.items():
        a = med(peer["runs"][kind], "cpu_ms_per_op", "citybrain")
        extra = [(med(r["fanout"][kind], "cpu_ms_per_op", "citybrain") - a) / (r["processes"] - 1)
                 for r in results if r["processes"] > 1 and r["fanout"][kind]]
        b = max(statistics.median(extra), 0.0) if extra else 0.0
        pg, nats = med(peer["runs"][kind], "cpu_ms_per_op", "postgres"), med(peer["runs"][kind], "cpu_ms_per_op", "nats")
        app = {n: round(n * 1000 / (a + (n - 1) * b)) for n in sizes}
        proj[kind] = {"a_ms": round(a, 4), "b_ms": round(b, 4), "b_estimates": [round(x, 4) for x in extra],
                      "app_tier_ops_s": app,
                      "per_postgres_core": round(1000 / pg) if pg else None,
                      "per_nats_core": round(1000 / nats) if nats else None}
        projection.append(f"| {what} | {a:.3f} | {b:.3f} | " + " | ".join(f"{v:,}" for v in app.values())
                          + f" | {proj[kind]['per_postgres_core'] or 0:,} | {proj[kind]['per_nats_core'] or 0:,} |")

    date = dt.date.today().isoformat()
    out = ROOT / "bench" / "results" / f"scaleout-{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": "scaleout", "date": date, "commit": _git("rev-parse", "HEAD"),
           "uncommitted_product_files": len(_git("status", "--porcelain", "citybrain").splitlines()),
           "figures": figures, "projection": proj, "params": vars(args),
           "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after, "results": results}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    idle = [f"{r['processes']} processes: " + ", ".join(f"{c:.3f}" for c in r["idle"]["citybrain_cores"])
            + f" ({len(r['consumers'])} JetStream consumers)" for r in results]
    stream = [f"{what}: {med(peer['runs'][kind], 'stream_bytes_per_op'):,.0f} bytes and "
              f"{med(peer['runs'][kind], 'stream_messages_per_op'):.3f} messages per operation"
              for kind, (_, what) in KINDS.items()]
    report = [
        f"{os.cpu_count()} CPUs shared by the citybrain processes, PostgreSQL, NATS and wrk; load average before "
        f"{load_before}, after {load_after}. {args.connections} wrk connections in total, shared out over the "
        f"processes; {args.batch} observations per POST; {args.seconds} s per measurement, median of {args.runs}. "
        "CPU columns: CPU milliseconds per operation (observation, update, read), summed over the processes, "
        "counted until the processes were idle again (the pipeline works through stored observations after the "
        "load stops). Machine busy and others' load (CPU this benchmark did not account for) cover the same "
        "time.", "",
        *table, "", "The same load sent to process 1 only: what the other processes spend on operations they did not serve "
        "(events every process applies, plus the pipeline work of the partitions they own):", "", *fan,
        "", f"Idle CPU (cores) per process: {'; '.join(idle)}.", "",
        f"JetStream stream growth (1 process; the stream keeps messages 7 days): {'; '.join(stream)}.", "",
        "Projection, not measured (more cores than this machine has): a = citybrain CPU per operation of the "
        "single process; b = what each further process adds to an operation (all load on process 1: total CPU per "
        "operation minus a, per extra process); N processes on N cores at N·1000/(a + b·(N−1)) ops/s, if "
        "PostgreSQL and NATS keep up (their operations per core, at the single process's cost, in the last two "
        "columns):", "", *projection, ""]
    out.with_suffix(".md").write_text("\n".join([f"# Scale-out, {date}", "", *report]))
    print("\n".join(["", *report]))
    print(f"results: {out.relative_to(ROOT)} and {out.with_suffix('.md').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
