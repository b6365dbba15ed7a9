"""Fault scenarios: crash, dependency restarts, graceful stop, partition and fuzz. Each returns a Result row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from reliability.check import Result, check, fill
from reliability.common import finish, wait_mqtt, wait_stored
from reliability.load import Acks, HttpLoad, MqttLoad
from reliability.services import ROOT, Node, PrivateMosquitto, PrivateNats, PrivatePostgres


def crash(seconds: float = 20.0, http_rate: float = 2000.0, mqtt_rate: float = 500.0, down: float = 2.0,
          fault: str | None = None, mqtt: bool = True) -> Result:
    """SIGKILL the node during sustained HTTP and MQTT QoS 1 ingest; restart; check every acknowledgement."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-crash-"))
    broker = PrivateMosquitto() if mqtt else None
    acks = Acks()
    result = Result("crash (SIGKILL)" + (f" [{fault}]" if fault else ""))
    try:
        url = ""
        if broker is not None:
            broker.start()
            url = f"mqtt://127.0.0.1:{broker.port}?client_id=cb-rel-{uuid.uuid4().hex[:8]}"
        node = Node(str(work / "cb.db"), mqtt=url, sensors=8, devices=4 if mqtt else 0, fault=fault, workdir=work)
        node.start()
        if broker is not None:
            wait_mqtt(node)
        http = HttpLoad(node.base, 8, acks, workers=4, batch=20, rate=http_rate)
        pub = MqttLoad("127.0.0.1", broker.port, 4, acks, rate=mqtt_rate) if broker is not None else None
        http.start()
        if pub is not None:
            pub.start()
        time.sleep(seconds)
        node.kill()
        http.stop()
        time.sleep(down)  # MQTT keeps publishing into the broker's queue for the absent session
        result.recovery_s = round(node.start(), 2)
        if pub is not None:
            pub.stop()
        wait_stored(node, acks.total)
        result.offered = f"HTTP {http_rate:g} obs/s" + (f" + MQTT QoS 1 {mqtt_rate:g} msg/s" if mqtt else "") \
            + f", kill -9 after {seconds:g} s"
        result.details["http_statuses"] = dict(acks.statuses)
        return finish(node, result, acks)
    finally:
        if broker is not None:
            broker.close()


def dependencies(seconds: float = 4.0, outage: float = 3.0, postgres: bool = True, nats: bool = True,
                 rate: float = 1000.0) -> Result:
    """Restart PostgreSQL and/or NATS (private servers) under load; watch health degrade and recover."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-deps-"))
    servers: list[Any] = []
    acks = Acks()
    names = [n for n, on in (("PostgreSQL", postgres), ("NATS", nats)) if on]
    result = Result(f"dependency restart ({', '.join(names)})")
    try:
        pg = PrivatePostgres() if postgres else None
        bus = PrivateNats() if nats else None
        for server in (pg, bus):
            if server is not None:
                server.start()
                servers.append(server)
        store = pg.url if pg is not None else str(work / "cb.db")
        node = Node(store, bus=bus.url if bus is not None else "memory", sensors=8, workdir=work)
        node.start()
        load = HttpLoad(node.base, 8, acks, workers=4, batch=20, rate=rate)
        load.start()
        recoveries: dict[str, float] = {}
        degraded_after: dict[str, float] = {}
        for server in servers:
            time.sleep(seconds)
            server.stop()
            t_down = time.monotonic()
            seen = _watch_health(node, outage)
            if seen is not None:
                degraded_after[server.name] = round(seen - t_down, 2)
            server.start()
            t0 = time.monotonic()
            while not node.healthy() and time.monotonic() - t0 < 60:
                time.sleep(0.1)
            recoveries[server.name] = round(time.monotonic() - t0, 2)
            if seen is None:
                result.ok = False
                result.notes.append(f"/-/health never reported degraded while {server.name} was down")
        time.sleep(seconds)
        load.stop()
        if not node.alive():
            result.ok = False
            result.notes.append("node died")
        result.recovery_s = max(recoveries.values()) if recoveries else None
        result.details |= {"recovery_by_server_s": recoveries, "degraded_reported_after_s": degraded_after,
                           "http_statuses": dict(acks.statuses)}
        result.notes += [f"{k} down: /-/health degraded after {v} s" for k, v in degraded_after.items()]
        result.offered = f"HTTP {rate:g} obs/s; {outage:g} s outage each"
        return finish(node, result, acks)
    finally:
        for server in servers:
            server.close()


def _watch_health(node: Node, outage: float, limit: float = 20.0) -> float | None:
    """Poll /-/health while a dependency is down (at least `outage` s, until it reports degraded or `limit`)."""
    start, seen = time.monotonic(), None
    while time.monotonic() - start < limit and (seen is None or time.monotonic() - start < outage):
        try:
            r = httpx.get(node.base + "/-/health", timeout=limit)
            if r.status_code == 503 and r.json().get("status") == "degraded" and seen is None:
                seen = time.monotonic()
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    return seen


def partition() -> Result:
    """Run the federation partition tests (a cut link between community and city) if they exist."""
    result = Result("partition (federation)", offered="federation test suite")
    tests = ROOT / "tests" / "federation" / "test_partition.py"
    if not tests.exists():
        result.notes.append("not available: tests/federation/test_partition.py is missing")
        result.ok = True
        return result
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    result.ok = proc.returncode == 0
    result.notes.append(f"pytest {tests.relative_to(ROOT)}: {tail} ({time.monotonic() - t0:.0f} s)")
    return result


def fuzz(examples: int = 20, include: str = "", workers: int = 2) -> Result:
    """Schemathesis over the node's OpenAPI document: 0 server errors and 0 schema violations."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-fuzz-"))
    node = Node(str(work / "cb.db"), sensors=2, workdir=work)
    node.start()
    result = Result("fuzz (schemathesis)", offered=f"{examples} examples/operation")
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "run", node.base + "/openapi.json", "-c", "not_a_server_error,response_schema_conformance",
           "-n", str(examples), "--workers", str(workers), "--phases", "examples,fuzzing,stateful",
           "--request-timeout", "20", "--exclude-path-regex", "stream", "--suppress-health-check", "all",
           "--generation-deterministic"]
    if include:
        cmd += ["--include-path-regex", include]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=os.environ | {"NO_COLOR": "1"})
    finally:
        node.stop()
    out = proc.stdout + proc.stderr
    (work / "schemathesis.txt").write_text(out)
    generated = re.search(r"(\d+) generated", out)
    failed = re.search(r"(\d+) failed", out)
    ops = re.search(r"Tested: (\d+)", out)
    result.details |= {"operations": int(ops.group(1)) if ops else 0, "failed": int(failed.group(1)) if failed else 0,
                       "requests": int(generated.group(1)) if generated else 0, "exit_code": proc.returncode,
                       "log": str(work / "schemathesis.txt")}
    result.ok = proc.returncode == 0
    result.offered = f"{result.details['requests']} requests over {result.details['operations']} operations"
    result.notes.append(f"{result.details['failed']} server errors or schema violations (exit {proc.returncode})")
    if result.ok:
        node.cleanup()
    return result


def graceful(seconds: float = 3.0, rate: float = 2000.0) -> Result:
    """SIGTERM the node while HTTP ingest is running: it drains and every acknowledged write is stored."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-term-"))
    node = Node(str(work / "cb.db"), sensors=8, workdir=work)
    node.start()
    acks = Acks()
    load = HttpLoad(node.base, 8, acks, workers=6, batch=50, rate=rate)
    result = Result("graceful stop (SIGTERM under load)", offered=f"HTTP {rate:g} obs/s")
    load.start()
    time.sleep(seconds)
    t0 = time.monotonic()
    code = node.stop()  # while the load is still running
    result.recovery_s = round(time.monotonic() - t0, 2)  # here: time to drain and exit
    load.stop()
    text = node.log_text()
    if code not in (0, -15) or "drained in" not in text or "Application shutdown complete" not in text:
        result.ok = False
        result.notes.append(f"not a clean drain (exit code {code})")
    result.details["http_statuses"] = dict(acks.statuses)
    fill(result, acks.by_entity, check(node.store, acks.by_entity))
    if result.ok:
        node.cleanup()
    return result
