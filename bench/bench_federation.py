"""Benchmark: community → city messages/s through the federation (durable outbox, JetStream, durable
idempotent apply) beside raw nats-py JetStream (publish_async + pull consumer) in the same run, and the
catch-up time after a partition.

Usage: python bench/bench_federation.py [--url nats://127.0.0.1:4222] [--n 5000] [--rate 100]
                                        [--partition 60]

* raw: publish --n messages with publish_async, then drain them with a pull consumer (fetch 256, ack);
* federation: the community's link is cut, --n reports are committed to its outbox, the link is restored
  and the clock runs until the city has applied all of them (outbox → PubAck → fetch → SQLite commit of
  effect + inbox + sequence → ack);
* catch-up: the link is cut, the community commits reports at --rate msg/s for --partition seconds (as
  report.submit commands), the link is restored, and the clock runs until the city has applied them all.
  A 10-minute partition at 100 msg/s is 60 000 messages; the extrapolation divides that by the measured
  catch-up rate (catch-up is linear in the backlog: batches of 256 each way).

Both nodes run in this one process (two runtimes, two SQLite files), sharing one CPU budget.
Results go to bench/results/federation-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citybrain.config import Settings  # noqa: E402
from citybrain.federation.messages import stream_name  # noqa: E402
from citybrain.runtime import CityBrain  # noqa: E402

COMPONENTS = ["citybrain.model.commands", "citybrain.federation"]


async def raw(url: str, n: int) -> dict[str, Any]:
    """Raw nats-py: publish_async n messages, then drain them with a pull consumer."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    name, subject = "RAW_" + uuid.uuid4().hex[:8].upper(), "raw" + uuid.uuid4().hex[:8]
    await js.add_stream(StreamConfig(name=name, subjects=[f"{subject}.>"], storage=StorageType.FILE))
    payload = b"x" * 300
    t0 = time.perf_counter()
    futs = [await js.publish_async(f"{subject}.c1", payload, headers={"Nats-Msg-Id": uuid.uuid4().hex})
            for _ in range(n)]
    await asyncio.gather(*futs)
    t1 = time.perf_counter()
    sub = await js.pull_subscribe(f"{subject}.>", durable="raw", stream=name,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT))
    got = 0
    while got < n:
        msgs = await sub.fetch(256, timeout=5)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    t2 = time.perf_counter()
    await js.delete_stream(name)
    await nc.close()
    return {"n": n, "publish_msgs_s": n / (t1 - t0), "consume_msgs_s": n / (t2 - t1), "end_to_end_msgs_s": n / (t2 - t0)}


async def nodes(tmp: str, url: str) -> tuple[CityBrain, CityBrain]:
    """Start a city and a community runtime in this process."""
    city = CityBrain(Settings(store=f"{tmp}/city.db", node_id="city", role="city", parent=url), components=COMPONENTS)
    comm = CityBrain(Settings(store=f"{tmp}/c1.db", node_id="c1", role="community", parent=url,
                              area="urn:ngsi-ld:Community:c1"), components=COMPONENTS)
    await city.start()
    await comm.start()
    for _ in range(2000):  # polling is the point: this measures, it does not wait on a signal
        if "c1" in city.ports.federation.known:
            break
        await asyncio.sleep(0.05)
    return city, comm


async def applied(city: CityBrain, target: int) -> float:
    """Wait until the city applied `target` messages from c1; return when (perf_counter)."""
    receiver = city.ports.federation.receiver
    for _ in range(10**7):
        if receiver.last.get("c1", 0) >= target:
            break
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def federation(city: CityBrain, comm: CityBrain, n: int) -> dict[str, Any]:
    """Queue n messages while the link is cut, restore it, time until all are applied at the city."""
    fed = comm.ports.federation
    await fed.link.cut()
    ctx = comm.context("bench")
    for start in range(0, n, 500):
        await comm.store.apply([fed.up_op("report", {"text": "bench", "data": {"n": i}}, ctx)
                                for i in range(start, min(n, start + 500))])
    target = city.ports.federation.receiver.last.get("c1", 0) + n
    t0 = time.perf_counter()
    await fed.link.restore()
    t1 = await applied(city, target)
    return {"n": n, "msgs_s": n / (t1 - t0), "seconds": t1 - t0}


async def catch_up(city: CityBrain, comm: CityBrain, rate: float, seconds: float) -> dict[str, Any]:
    """Partition for `seconds` while committing reports at `rate`/s; time the catch-up after restore."""
    fed = comm.ports.federation
    await fed.link.cut()
    count = int(rate * seconds)
    t_start = time.perf_counter()
    for i in range(count):
        await comm.execute("report.submit", {"text": "partition", "data": {"n": i}})
        delay = t_start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    produced_in = time.perf_counter() - t_start
    backlog = sum((await fed.outbox.backlog()).values())
    target = city.ports.federation.receiver.last.get("c1", 0) + count
    t0 = time.perf_counter()
    await fed.link.restore()
    t1 = await applied(city, target)
    rate_in = count / (t1 - t0)
    return {"partition_s": produced_in, "rate": rate, "messages": count, "backlog_at_restore": backlog,
            "catch_up_s": t1 - t0, "catch_up_msgs_s": rate_in,
            "extrapolated_10min_catch_up_s": 60000 / rate_in,
            "note": "10 min at 100 msg/s = 60 000 messages; catch-up is linear in the backlog"}


async def main() -> None:
    """Run every case and write the JSON result."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="nats://127.0.0.1:4222")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--partition", type=float, default=60.0)
    args = ap.parse_args()
    os.environ["CITYBRAIN_FEDERATION_PREFIX"] = pfx = "bench" + uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"date": dt.date.today().isoformat(), "python": platform.python_version(),
                              "machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    result["raw_nats_py"] = await raw(args.url, args.n)
    with tempfile.TemporaryDirectory(prefix="bench-fed-") as tmp:
        city, comm = await nodes(tmp, args.url)
        try:
            result["federation"] = await federation(city, comm, args.n)
            result["catch_up"] = await catch_up(city, comm, args.rate, args.partition)
        finally:
            await comm.stop()
            await city.stop()
    result["ratio_federation_to_raw_end_to_end"] = (result["federation"]["msgs_s"]
                                                     / result["raw_nats_py"]["end_to_end_msgs_s"])
    nc = await nats.connect(args.url)
    await nc.jetstream().delete_stream(stream_name(pfx))
    await nc.close()
    out = Path(__file__).parent / "results" / f"federation-{result['date']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
