"""Benchmark: observations/s through situation + rules + detectors + risk (+ alerts), and observation → alert
latency (p50/p99) at 5,000 observations/s. Not a test. Writes bench/results/situation-<date>.json.

    .venv/bin/python bench/bench_situation.py [--rates 2000,5000] [--seconds 10]

The peer measured in the same run is the bare bus: publish → subscriber callback latency on the same loop,
the floor any rule engine behind this bus pays. The pipeline journal is measured against none in the same run
(`latency_at_<rate>_journal_off` / `_on`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from citybrain.bus import Message
from citybrain.clock import FakeClock, iso
from citybrain.config import Settings
from citybrain.model.entity import ObservationRow
from citybrain.obs import OBS_ALL
from citybrain.runtime import CityBrain

RULES = """rules:
  - id: pm25
    category: air.pollution
    quantity: pm25
    levels: {blue: {above: 150}, yellow: {stat: mean, window: 1h, above: 150}, red: {above: 400}}
"""
COMMUNITIES, CELLS, SENSORS = 100, 4, 5  # sensors per cell -> 2,000 sensors


async def city(tmp: Path, detectors: bool = True, journal: bool | None = None) -> CityBrain:
    tmp.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, not measured
    (tmp / "rules.yaml").write_text(RULES)  # noqa: ASYNC240
    settings = Settings(store=str(tmp / "bench.db"), bus="memory")
    settings.extra.update({"rules_file": str(tmp / "rules.yaml"), "detectors": detectors, "alert_resolve_after": 0})
    if journal is not None:
        settings.extra["pipeline_journal"] = journal
    rt = CityBrain(settings, clock=FakeClock("2016-12-16T00:00:00Z"))
    await rt.start()
    w = rt.execute
    await w("entity.write", {"entity": {"id": "urn:ngsi-ld:City:b", "type": "City"}})
    await w("entity.write", {"entity": {"id": "urn:ngsi-ld:District:d", "type": "District", "place": "urn:ngsi-ld:City:b"}})
    await w("entity.write", {"entity": {"id": "urn:ngsi-ld:Subdistrict:s", "type": "Subdistrict",
                                        "place": "urn:ngsi-ld:District:d"}})
    for c in range(COMMUNITIES):
        await w("entity.write", {"entity": {"id": f"urn:ngsi-ld:Community:c{c}", "type": "Community",
                                            "place": "urn:ngsi-ld:Subdistrict:s"}})
        for g in range(CELLS):
            await w("entity.write", {"entity": {"id": f"urn:ngsi-ld:Grid:c{c}g{g}", "type": "Grid",
                                                "place": f"urn:ngsi-ld:Community:c{c}",
                                                "attrs": {"population": random.randint(2000, 20000), "elderly": 1500}}})
            for s in range(SENSORS):
                await w("entity.write", {"entity": {"id": f"urn:ngsi-ld:AirQualityObserved:c{c}g{g}s{s}",
                                                    "type": "AirQualityObserved", "place": f"urn:ngsi-ld:Grid:c{c}g{g}"}})
    await rt.bus.drain()  # type: ignore[attr-defined]
    return rt


def sensors() -> list[str]:
    """Return every sensor id."""
    return [f"urn:ngsi-ld:AirQualityObserved:c{c}g{g}s{s}"
            for c in range(COMMUNITIES) for g in range(CELLS) for s in range(SENSORS)]


async def throughput(rt: CityBrain, n: int = 200_000) -> float:
    """Push n rows straight through the pipeline (no store writes for observations): rows per second."""
    ids = sensors()
    t0 = datetime(2016, 12, 16, tzinfo=UTC).timestamp()
    rows = [ObservationRow(ids[i % len(ids)], "pm25", iso(datetime.fromtimestamp(t0 + (i // len(ids)) * 60, UTC)),
                           float(random.gauss(80, 20))) for i in range(n)]
    take = rt.ports.situation.take
    start = time.perf_counter()
    for i in range(0, n, 500):
        await take(rows[i:i + 500])
    return n / (time.perf_counter() - start)


async def latency(rt: CityBrain, rate: int, seconds: float) -> dict[str, Any]:
    """Publish `rate` obs/s on cb.obs in 10 ms batches; measure publish → alert.raised and publish → bus callback."""
    sent: dict[tuple[str, str], float] = {}
    alert_ms: list[float] = []
    floor_ms: list[float] = []

    async def on_alert(msg: Message) -> None:
        data = orjson.loads(msg.data)["data"]
        t = sent.pop((data["alertSource"], data["validFrom"]), None)
        if t is not None:
            alert_ms.append((time.perf_counter() - t) * 1000)

    async def on_obs(msg: Message) -> None:
        floor_ms.append((time.perf_counter() - float(msg.headers["t"])) * 1000)

    await rt.bus.subscribe("cb.event.alert.raised", on_alert)
    await rt.bus.subscribe(OBS_ALL, on_obs)
    ids = sensors()
    ingest = rt.ports.ingest
    per_batch = rate // 100
    t0 = datetime(2016, 12, 17, tzinfo=UTC).timestamp()
    tick = 0
    start = time.perf_counter()
    hot: set[str] = set()
    while time.perf_counter() - start < seconds:
        when = iso(datetime.fromtimestamp(t0 + tick, UTC))
        rows = []
        for j in range(per_batch):
            entity = ids[(tick * per_batch + j) % len(ids)]
            high = entity not in hot and random.random() < 0.01
            rows.append(ObservationRow(entity, "pm25", when, 300.0 if high else 60.0))
            (hot.add if high else hot.discard)(entity)
        now = time.perf_counter()
        for r in rows:
            if r.value >= 150:
                sent[(r.entity_id, when)] = now
        await ingest.publish(rows, {"t": repr(now)})  # as ingest does: one batch per community partition
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.01 - time.perf_counter()))
    await rt.bus.drain()  # type: ignore[attr-defined]
    q = statistics.quantiles
    return {"rate_target": rate, "observations": tick * per_batch, "seconds": round(time.perf_counter() - start, 2),
            "alerts": len(alert_ms), "alert_p50_ms": round(q(alert_ms, n=100)[49], 2),
            "alert_p99_ms": round(q(alert_ms, n=100)[98], 2),
            "bus_floor_p50_ms": round(q(floor_ms, n=100)[49], 2), "bus_floor_p99_ms": round(q(floor_ms, n=100)[98], 2)}


async def main() -> None:
    """Run both measurements and write the JSON report."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="2000,5000", help="offered loads in obs/s, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    out: dict[str, Any] = {"date": str(date.today()), "sensors": COMMUNITIES * CELLS * SENSORS}
    with tempfile.TemporaryDirectory() as tmp:
        for detectors in (False, True):
            rt = await city(Path(tmp) / f"t{int(detectors)}", detectors)
            out[f"pipeline_obs_per_s{'_with_detectors' if detectors else '_rules_only'}"] = round(await throughput(rt))
            out["detector"] = rt.ports.rules.detectors.name
            await rt.stop()
        for rate in (int(x) for x in args.rates.split(",")):
            rt = await city(Path(tmp) / f"lat{rate}", True)
            out[f"latency_at_{rate}"] = await latency(rt, rate, args.seconds)
            await rt.stop()
        # the pipeline journal (on by default) against none, same run: its cost on the embedded default
        rate = max(int(x) for x in args.rates.split(","))
        for journal in (False, True):
            rt = await city(Path(tmp) / f"journal{int(journal)}", True, journal)
            out[f"latency_at_{rate}_journal_{'on' if journal else 'off'}"] = await latency(rt, rate, args.seconds)
            await rt.stop()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    path = Path(__file__).parent / "results" / f"situation-{out['date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    asyncio.run(main())
