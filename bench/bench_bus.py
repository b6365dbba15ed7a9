"""Benchmark: NatsBus versus raw nats-py JetStream, publish and consume throughput (messages/s).

Usage: python bench/bench_bus.py [--url nats://127.0.0.1:4222] [--n 20000] [--size 200] [--runs 3]

Every case runs `--runs` times on a fresh stream (deleted afterwards); the table shows the median and
the ratio NatsBus / raw for comparable pairs. Results also go to bench/results/bus-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citybrain.bus import Message  # noqa: E402
from citybrain.bus.nats import NatsBus  # noqa: E402

Case = Callable[[str, str, str, int, bytes, int], Awaitable[float]]


async def _fresh_stream(url: str, stream: str, prefix: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE, duplicate_window=120)
    )
    await nc.close()


async def _drop_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.delete_stream(stream)
    await nc.close()


async def _fill(url: str, stream: str, prefix: str, n: int, payload: bytes) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    futs = [await js.publish_async(f"{prefix}.s.{i % 8}", payload) for i in range(n)]
    await asyncio.gather(*futs)
    await nc.close()


async def _workers(conc: int, n: int, one: Callable[[int], Awaitable[Any]]) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(conc)))


async def raw_publish(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """Raw js.publish, each awaiting its PubAck, `conc` in flight."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    t0 = time.perf_counter()
    await _workers(conc, n, lambda i: js.publish(f"{prefix}.s.{i % 8}", payload))
    took = time.perf_counter() - t0
    await nc.close()
    return n / took


async def raw_publish_async(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """Raw js.publish_async, pipelined, then await every PubAck."""
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    t0 = time.perf_counter()
    futs = [await js.publish_async(f"{prefix}.s.{i % 8}", payload) for i in range(n)]
    await asyncio.gather(*futs)
    took = time.perf_counter() - t0
    await nc.close()
    return n / took


async def bus_publish(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """NatsBus.publish, `conc` in flight."""
    bus = NatsBus(url, stream=stream, subjects=[f"{prefix}.>"])
    await bus.connect()
    t0 = time.perf_counter()
    await _workers(conc, n, lambda i: bus.publish(f"{prefix}.s.{i % 8}", payload))
    took = time.perf_counter() - t0
    await bus.close()
    return n / took


async def bus_publish_many(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """NatsBus.publish_many (pipelined, window 1000)."""
    bus = NatsBus(url, stream=stream, subjects=[f"{prefix}.>"])
    await bus.connect()
    t0 = time.perf_counter()
    await bus.publish_many(Message(f"{prefix}.s.{i % 8}", payload) for i in range(n))
    took = time.perf_counter() - t0
    await bus.close()
    return n / took


async def raw_consume(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """Raw pull consumer: fetch(256) in a loop, ack each message."""
    await _fill(url, stream, prefix, n, payload)
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"{prefix}.>",
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000),
    )
    seen = 0
    t0 = time.perf_counter()
    while seen < n:
        try:
            msgs = await sub.fetch(256, timeout=2)
        except nats.errors.TimeoutError:
            continue
        for m in msgs:
            await m.ack()
        seen += len(msgs)
    took = time.perf_counter() - t0
    await nc.close()
    return n / took


async def bus_consume(url: str, stream: str, prefix: str, n: int, payload: bytes, conc: int) -> float:
    """NatsBus.subscribe(deliver_all) with a trivial handler."""
    await _fill(url, stream, prefix, n, payload)
    bus = NatsBus(url, stream=stream, subjects=[f"{prefix}.>"])
    await bus.connect()
    done = asyncio.Event()
    seen = 0

    async def handler(msg: Message) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            done.set()

    t0 = time.perf_counter()
    await bus.subscribe(f"{prefix}.>", handler, deliver_all=True)
    await done.wait()
    took = time.perf_counter() - t0
    await bus.close()
    return n / took


PAIRS: list[tuple[str, Case, Case]] = [
    ("publish (concurrent, awaited acks)", raw_publish, bus_publish),
    ("publish pipelined (publish_async / publish_many)", raw_publish_async, bus_publish_many),
    ("consume (pull, ack each)", raw_consume, bus_consume),
]


async def run_once(case: Case, url: str, n: int, payload: bytes, conc: int) -> tuple[float, float]:
    """Run one case on a fresh stream; return (messages/s, client CPU microseconds per message)."""
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"BENCH{tag}", f"bench{tag}"
    await _fresh_stream(url, stream, prefix)
    try:
        cpu0 = time.process_time()
        rate = await case(url, stream, prefix, n, payload, conc)
        cpu = (time.process_time() - cpu0) * 1e6 / n
    finally:
        await _drop_stream(url, stream)
    return rate, cpu


async def main() -> None:
    """Run every pair, print a markdown table and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="nats://127.0.0.1:4222")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    payload = b"x" * args.size
    rows = []
    for label, raw, ours in PAIRS:
        raw_runs: list[tuple[float, float]] = []
        bus_runs: list[tuple[float, float]] = []
        for _ in range(args.runs):  # interleaved, so load drift hits both sides alike
            raw_runs.append(await run_once(raw, args.url, args.n, payload, args.concurrency))
            bus_runs.append(await run_once(ours, args.url, args.n, payload, args.concurrency))
        raw_rates, bus_rates = [r for r, _ in raw_runs], [r for r, _ in bus_runs]
        raw_med, bus_med = statistics.median(raw_rates), statistics.median(bus_rates)
        raw_cpu, bus_cpu = (
            statistics.median(c for _, c in raw_runs),
            statistics.median(c for _, c in bus_runs),
        )
        rows.append(
            {
                "case": label,
                "raw": raw.__name__,
                "bus": ours.__name__,
                "raw_msgs_per_s": round(raw_med),
                "bus_msgs_per_s": round(bus_med),
                "ratio": round(bus_med / raw_med, 3),
                "raw_cpu_us_per_msg": round(raw_cpu, 1),
                "bus_cpu_us_per_msg": round(bus_cpu, 1),
                "raw_runs": [round(r) for r in raw_rates],
                "bus_runs": [round(r) for r in bus_rates],
            }
        )
    print(
        f"\nNatsBus vs raw nats-py, n={args.n}, {args.size} B payload, concurrency {args.concurrency}, "
        f"median of {args.runs}\n"
    )
    print("| case | raw msg/s | NatsBus msg/s | ratio | raw CPU µs/msg | NatsBus CPU µs/msg |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['raw_msgs_per_s']:,} | {r['bus_msgs_per_s']:,} | {r['ratio']:.2f} "
            f"| {r['raw_cpu_us_per_msg']} | {r['bus_cpu_us_per_msg']} |"
        )
    out = Path(__file__).parent / "results" / f"bus-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "url": args.url,
        "n": args.n,
        "payload_bytes": args.size,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "python": platform.python_version(),
        "nats_py": importlib.metadata.version("nats-py"),
        "machine": platform.machine(),
    }
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    asyncio.run(main())
