"""Pressure scenarios: overload at a multiple of capacity (HTTP and MQTT) and the soak."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from reliability.check import Result, check, fill
from reliability.common import finish, mqtt_counts, wait_mqtt
from reliability.load import Acks, HttpLoad, MqttLoad, open_loop
from reliability.services import Node, PrivateMosquitto


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) per minute."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mt = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mt) ** 2 for p in points)
    return 60.0 * sum((p[0] - mt) * (p[1] - my) for p in points) / var if var else 0.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def soak(seconds: float = 1800.0, rate: float = 1000.0, strict: bool = True) -> Result:
    """Ingest at `rate` obs/s for `seconds`; report memory and latency slopes."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-soak-"))
    node = Node(str(work / "cb.db"), sensors=16, workdir=work)
    node.start()
    acks = Acks()
    load = HttpLoad(node.base, 16, acks, workers=4, batch=20, rate=rate)
    result = Result(f"soak {seconds:g} s", offered=f"HTTP {rate:g} obs/s")
    memory: list[tuple[float, float]] = []
    t0 = time.monotonic()
    load.start()
    assert node.proc is not None
    while time.monotonic() - t0 < seconds and node.alive():
        memory.append((time.monotonic() - t0, _rss_mb(node.proc.pid)))
        time.sleep(1.0)
    # end with a graceful stop while the load still runs: the drain must keep every acknowledged write
    t_stop = time.monotonic()
    code = node.stop()
    result.details["drain_and_exit_s"] = round(time.monotonic() - t_stop, 2)
    load.stop()
    if code not in (0, -15) or "drained in" not in node.log_text():
        result.ok = False
        result.notes.append(f"no clean drain on SIGTERM (exit code {code})")
    lat = [(t - t0, s * 1000) for t, s in acks.latencies]
    lat.sort()
    third = max(1, len(lat) // 3)
    p50 = [sorted(x[1] for x in part)[len(part) // 2] if part else 0.0 for part in (lat[:third], lat[-third:])]
    # caches (the bus's replay log, SQLite page caches) fill during the first minutes: a leak is growth
    # that goes on, so the check uses the second half of the run (the whole-run slope is reported too)
    settled = [p for p in memory if p[0] >= seconds / 2]
    result.details |= {"memory_mb_first_last": [round(memory[0][1], 1), round(memory[-1][1], 1)] if memory else [],
                       "memory_slope_mb_per_min": round(_slope(settled), 3),
                       "memory_slope_whole_run_mb_per_min": round(_slope(memory), 3),
                       "latency_slope_ms_per_min": round(_slope(lat), 3),
                       "latency_p50_ms_first_last_third": [round(p, 2) for p in p50],
                       "achieved_obs_s": round(acks.total / max(1e-9, seconds), 1)}
    result.notes.append(f"memory {result.details['memory_slope_mb_per_min']:+.2f} MB/min in the second half "
                        f"({result.details['memory_slope_whole_run_mb_per_min']:+.2f} over the whole run), "
                        f"latency {result.details['latency_slope_ms_per_min']:+.2f} ms/min")
    if strict and (result.details["memory_slope_mb_per_min"] > 2.0 or p50[1] > 3 * max(p50[0], 5.0)):
        result.ok = False
        result.notes.append("memory or latency not flat")
    fill(result, acks.by_entity, check(node.store, acks.by_entity))
    if result.ok:
        node.cleanup()
    return result


def overload(factor: float = 2.0, measure: float = 5.0, seconds: float = 10.0, batch: int = 100) -> Result:
    """Measure capacity, offer `factor` times it open-loop; expect 429/503 with Retry-After, no crash, recovery."""
    work = Path(tempfile.mkdtemp(prefix="cb-rel-over-"))
    node = Node(str(work / "cb.db"), sensors=16, workdir=work)
    node.start()
    acks = Acks()
    probe = HttpLoad(node.base, 16, acks, workers=8, batch=batch)
    probe.start()
    time.sleep(measure)
    probe.stop()
    capacity = acks.total / measure
    result = Result(f"overload {factor:g}x", offered=f"{factor:g} x {capacity:,.0f} obs/s for {seconds:g} s")
    before = dict(acks.statuses)
    acks.statuses.clear()
    info = asyncio.run(open_loop(node.base, 16, acks, rate=factor * capacity, seconds=seconds, batch=batch))
    statuses = dict(acks.statuses)
    t0 = time.monotonic()
    recovered = None
    while time.monotonic() - t0 < 60:
        try:
            r = httpx.post(node.base + "/api/v1/observations", timeout=10, json=[
                {"entity": "urn:ngsi-ld:RelSensor:h0", "attr": "probe", "observedAt": "2026-01-01T00:00:00Z",
                 "value": 1}])
            if r.status_code == 200:
                recovered = time.monotonic() - t0
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    result.recovery_s = round(recovered, 2) if recovered is not None else None
    shed = sum(n for s, n in statuses.items() if s in ("429", "503"))
    unclear = {s: n for s, n in statuses.items() if s not in ("200", "429", "503")}
    result.details |= {"capacity_obs_s": round(capacity, 1), "probe_statuses": before, "statuses": statuses,
                       **info}
    result.notes.append(f"capacity {capacity:,.0f} obs/s, offered {info['offered_rate']:,.0f} obs/s; "
                        f"answers {statuses}")
    if not node.alive():
        result.ok = False
        result.notes.append("node crashed")
    if unclear:
        result.ok = False
        result.notes.append(f"answers other than 200/429/503: {unclear}")
    if recovered is None:
        result.ok = False
        result.notes.append("did not recover within 60 s")
    if shed == 0:
        result.notes.append("nothing shed: the offered load did not exceed what the node absorbs")
    return finish(node, result, acks)


def mqtt_flow(seconds: float = 20.0, rate: float = 6000.0) -> Result:
    """MQTT QoS 1 faster than the node stores: the broker holds the backlog, the node stays bounded, none lost."""
    from citybrain.mqtt.client import RECEIVE_MAXIMUM

    work = Path(tempfile.mkdtemp(prefix="cb-rel-mqtt-"))
    broker = PrivateMosquitto()
    broker.start()
    acks = Acks()
    result = Result("overload MQTT (flow control)", offered=f"MQTT QoS 1 {rate:g} msg/s for {seconds:g} s")
    try:
        url = f"mqtt://127.0.0.1:{broker.port}?client_id=cb-rel-{uuid.uuid4().hex[:8]}"
        node = Node(str(work / "cb.db"), mqtt=url, sensors=1, devices=8, workdir=work)
        node.start()
        wait_mqtt(node)
        assert node.proc is not None
        pub = MqttLoad("127.0.0.1", broker.port, 8, acks, rate=rate)
        pub.start()
        rss, t0 = [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            rss.append(_rss_mb(node.proc.pid))
            time.sleep(0.5)
        pub.stop(settle=30)
        stored_then = mqtt_counts(node)[1]
        t_drain = time.monotonic()
        end, last, still = t_drain + 900, -1, t_drain
        while time.monotonic() < end and time.monotonic() - still < 30:
            done = mqtt_counts(node)[1]
            rss.append(_rss_mb(node.proc.pid))
            if done >= acks.total:
                break
            if done != last:
                last, still = done, time.monotonic()
            time.sleep(0.5)
        result.recovery_s = round(time.monotonic() - t_drain, 2)
        result.details |= {"published": pub.offered, "broker_acknowledged": acks.total,
                           "stored_when_publishing_stopped": stored_then, "node_rss_mb_max": round(max(rss), 1),
                           "receive_maximum": RECEIVE_MAXIMUM}
        result.notes.append(f"{acks.total - stored_then} messages waited at the broker when publishing stopped; "
                            f"node RSS at most {max(rss):.0f} MB; drained in {result.recovery_s} s")
        return finish(node, result, acks)
    finally:
        broker.close()
