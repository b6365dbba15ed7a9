"""Load generators that remember exactly what was acknowledged: HTTP ingest, MQTT QoS 1, open-loop HTTP.

Every observation is `seq` = k on one sensor, observed at BASE + k ms, so each is unique and a checker can
tell lost from duplicated. HTTP counts an observation acknowledged on a 200; MQTT on the broker's PUBACK.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as paho

from reliability.node import device_entity, sensor_id

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(k: int) -> str:
    """Return the observedAt of sequence number k."""
    return (BASE + timedelta(milliseconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Acks:
    """Acknowledged sequence numbers per entity, shared by load threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_entity: dict[str, set[int]] = {}
        self.statuses: Counter[str] = Counter()
        self.latencies: list[tuple[float, float]] = []  # (time, seconds) of acknowledged requests

    def add(self, entity: str, seqs: list[int]) -> None:
        """Record acknowledged observations."""
        with self.lock:
            self.by_entity.setdefault(entity, set()).update(seqs)

    @property
    def total(self) -> int:
        """Number of acknowledged observations."""
        with self.lock:
            return sum(len(v) for v in self.by_entity.values())


class HttpLoad:
    """Closed-loop HTTP ingest: `workers` threads, each owning some sensors, optionally paced to `rate` obs/s."""

    def __init__(self, base: str, sensors: int, acks: Acks, workers: int = 4, batch: int = 10,
                 rate: float | None = None) -> None:
        self.base, self.sensors, self.acks = base, sensors, acks
        self.workers, self.batch, self.rate = workers, batch, rate
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.offered = 0
        self.next_seq: dict[int, int] = {}

    def start(self) -> None:
        """Start the worker threads."""
        self.stop_event.clear()
        for w in range(self.workers):
            t = threading.Thread(target=self._work, args=(w,), daemon=True)
            self.threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop the workers and wait for them."""
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
        self.threads = []

    def _work(self, w: int) -> None:
        mine = [i for i in range(self.sensors) if i % self.workers == w] or [w % max(1, self.sensors)]
        pace = self.batch / (self.rate / self.workers) if self.rate else 0.0
        next_at = time.monotonic()
        with httpx.Client(base_url=self.base, timeout=30.0) as client:
            turn = 0
            while not self.stop_event.is_set():
                sensor = mine[turn % len(mine)]
                turn += 1
                first = self.next_seq.get(sensor, 0)
                seqs = list(range(first, first + self.batch))
                self.next_seq[sensor] = first + self.batch
                items = [{"entity": sensor_id(sensor), "attr": "seq", "observedAt": stamp(k), "value": k}
                         for k in seqs]
                self.offered += len(items)
                t0 = time.monotonic()
                try:
                    r = client.post("/api/v1/observations", json=items)
                    status = str(r.status_code)
                    if r.status_code == 200:
                        self.acks.add(sensor_id(sensor), seqs)
                        with self.acks.lock:
                            self.acks.latencies.append((t0, time.monotonic() - t0))
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    time.sleep(0.05)
                with self.acks.lock:
                    self.acks.statuses[status] += 1
                if pace:
                    next_at += pace
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        next_at = time.monotonic()


class MqttLoad:
    """MQTT QoS 1 publisher over `devices` devices at `rate` messages/s; acknowledged on PUBACK."""

    def __init__(self, host: str, port: int, devices: int, acks: Acks, rate: float = 200.0) -> None:
        self.devices, self.acks, self.rate = devices, acks, rate
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"rel-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.pending: dict[int, tuple[str, int]] = {}
        self.early: set[int] = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.offered = 0

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self.lock:
            found = self.pending.pop(mid, None)
            if found is None:
                self.early.add(mid)  # PUBACK before publish() returned
        if found is not None:
            self.acks.add(found[0], [found[1]])

    def start(self) -> None:
        """Connect and start publishing."""
        self.client.loop_start()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        k, next_at = 0, time.monotonic()
        while not self.stop_event.is_set():
            device = k % self.devices
            seq = k // self.devices
            payload = f'{{"seq": {seq}, "TimeInstant": "{stamp(seq)}"}}'
            info = self.client.publish(f"/rel/m{device}/attrs", payload, qos=1)
            with self.lock:
                acked = info.mid in self.early
                if acked:
                    self.early.discard(info.mid)
                else:
                    self.pending[info.mid] = (device_entity(device), seq)
            if acked:
                self.acks.add(device_entity(device), [seq])
            self.offered += 1
            k += 1
            next_at += 1.0 / self.rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self, settle: float = 5.0) -> None:
        """Stop publishing, wait up to `settle` s for outstanding PUBACKs, disconnect."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(10)
        end = time.monotonic() + settle
        while self.pending and time.monotonic() < end:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """Send one HTTP/1.1 request on a kept-alive connection; return (status, has Retry-After)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    if headers.get("connection", "").lower() == "close":
        raise ConnectionResetError("server closed the connection")
    return status, "retry-after" in headers


async def open_loop(base: str, sensors: int, acks: Acks, rate: float, seconds: float, batch: int = 10,
                    first_seq: int = 10_000_000, max_connections: int = 512) -> dict[str, Any]:
    """Offer `rate` obs/s for `seconds` whatever the answers (open loop, raw HTTP/1.1); count statuses.

    A request waits for a free connection; a new connection is opened while all are busy (up to
    `max_connections`), so a slow server sees more and more concurrent requests, as with real clients.
    """
    import orjson

    host, port = base.removeprefix("http://").split(":")
    jobs: asyncio.Queue[tuple[int, list[int]] | None] = asyncio.Queue()
    workers: list[asyncio.Task[None]] = []

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (job := await jobs.get()) is not None:
            sensor, seqs = job
            body = orjson.dumps([{"entity": sensor_id(sensor), "attr": "seq", "observedAt": stamp(k), "value": k}
                                 for k in seqs])
            request = (f"POST /api/v1/observations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                       f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, int(port))
                code, retry = await asyncio.wait_for(_exchange(*conn, request), timeout=60)
                status = str(code)
                if code == 200:
                    acks.add(sensor_id(sensor), seqs)
                    acks.latencies.append((t0, time.monotonic() - t0))
                elif code in (429, 503) and not retry:
                    status += "-no-retry-after"
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as exc:
                status = type(exc).__name__
                if conn is not None:
                    conn[1].close()
                conn = None
            acks.statuses[status] += 1
        if conn is not None:
            conn[1].close()

    start = time.monotonic()
    interval, k = batch / rate, 0
    while time.monotonic() - start < seconds:
        sensor = k % sensors
        seq0 = first_seq + (k // sensors) * batch
        jobs.put_nowait((sensor, list(range(seq0, seq0 + batch))))
        if jobs.qsize() > 1 and len(workers) < max_connections or not workers:
            workers.append(asyncio.create_task(worker()))
        k += 1
        await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))
    offered = k * batch
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.wait(workers, timeout=120)
    return {"offered_obs": offered, "offered_rate": round(offered / seconds, 1), "connections": len(workers),
            "seconds": round(time.monotonic() - start, 2)}
