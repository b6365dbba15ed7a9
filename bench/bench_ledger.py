"""Benchmark: durable ledger appends/s (SQLite, PostgreSQL), inclusion proof time, access-logging overhead.

Usage: python bench/bench_ledger.py [--n 50000] [--batch 1000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Anchor: Tessera (transparency-dev) reports about 10,000 entries/s on local disks. Appends here are
durable: each batch of leaves, its leaf-hash tiles and the new head commit in one store transaction
before the call returns. Results also go to bench/results/ledger-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citybrain.ledger.log import LEAVES, STATE, TILES, LedgerLog  # noqa: E402
from citybrain.ledger.note import Signer  # noqa: E402
from citybrain.store import open_store  # noqa: E402
from citybrain.store.base import DeleteDoc  # noqa: E402

TESSERA_ANCHOR = 10_000.0


def entry(i: int) -> bytes:
    """Return a realistic ~300-byte event entry."""
    return json.dumps({"context": {"actor": "department_handler:transport:zhao", "id": f"01J{i:023d}",
                                   "origin": "city", "parent_id": None},
                       "data": {"case": f"case-{i}", "step": "dispatch", "to": "transport", "note": "x" * 80},
                       "seq": i + 1, "time": "2026-03-01T08:00:00.000Z", "type": "command.case.dispatch"},
                      sort_keys=True, separators=(",", ":")).encode()


async def bench_appends(url: str, n: int, batch: int) -> dict[str, Any]:
    """Return durable appends/s of n entries in batches, plus the checkpoint signing time."""
    store = open_store(url)
    await store.open()
    try:
        if url.startswith("postgres"):
            await _clear(store)
        log = LedgerLog(store, "citybrain/bench", Signer.generate("citybrain/bench"))
        await log.load()
        entries = [entry(i) for i in range(n)]
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            await log.append(entries[k:k + batch])
        elapsed = time.perf_counter() - t0
        t1 = time.perf_counter()
        await log.checkpoint()
        sign = time.perf_counter() - t1
        proofs = _proofs(log)
        if url.startswith("postgres"):
            await _clear(store)
        return {"store": url.split("://")[0] if "://" in url else "sqlite", "entries": n, "batch": batch,
                "appends_per_s": round(n / elapsed), "vs_tessera": round(n / elapsed / TESSERA_ANCHOR, 2),
                "checkpoint_ms": round(sign * 1000, 2), **proofs}
    finally:
        await store.close()


async def _clear(store: Any) -> None:
    for coll in (LEAVES, TILES, STATE, "ledger_checkpoints"):
        while docs := await store.list_docs(coll, limit=5000):
            await store.apply([DeleteDoc(coll, d.id) for d in docs])


def _proofs(log: LedgerLog, count: int = 1000) -> dict[str, float]:
    """Time inclusion proofs at random indexes of the full tree (first pass fills the subtree cache)."""
    rng = random.Random(7)
    idx = [rng.randrange(log.size) for _ in range(count)]
    out: dict[str, float] = {}
    for name in ("inclusion_proof_cold_us", "inclusion_proof_warm_us"):
        t = time.perf_counter()
        for i in idx:
            log.inclusion_proof(i, log.size)
        out[name] = round((time.perf_counter() - t) / count * 1e6, 1)
    return out


async def bench_access_overhead(requests: int = 300) -> dict[str, Any]:
    """Return the time of an NGSI-LD entity GET, and of the same GET plus its durable access-log entry."""
    import httpx

    from citybrain.api import create_app
    from citybrain.config import Settings
    from citybrain.runtime import CityBrain

    with tempfile.TemporaryDirectory() as tmp:
        rt = CityBrain(Settings(store=f"{tmp}/b.db"))
        await rt.start()
        try:
            sensor = "urn:ngsi-ld:AirQualityObserved:b1"
            await rt.execute("entity.write", {"entity": {"id": sensor, "type": "AirQualityObserved",
                                                         "attrs": {"pm25": {"type": "Property", "value": 35}}}})
            app = create_app(rt, manage_runtime=False)
            ledger = rt.ports.ledger
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
                async def get() -> None:
                    r = await c.get(f"/ngsi-ld/v1/entities/{sensor}")
                    assert r.status_code == 200, r.text

                async def logged() -> None:
                    await get()
                    await ledger.record_access(rt.context("external_user:bench"), "air-quality", 1, "g-bench")

                plain, with_log = [], []
                for _ in range(requests):
                    for fn, sink in ((get, plain), (logged, with_log)):
                        t = time.perf_counter()
                        await fn()
                        sink.append(time.perf_counter() - t)
            p, w = statistics.median(plain) * 1000, statistics.median(with_log) * 1000
            return {"requests": requests, "ngsi_get_ms_median": round(p, 3), "with_access_log_ms_median": round(w, 3),
                    "overhead_ms": round(w - p, 3), "overhead_pct": round((w - p) / p * 100, 1)}
        finally:
            await rt.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run every case; PostgreSQL is skipped (with the reason) when unreachable."""
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "python": platform.python_version(),
                               "machine": platform.machine(), "anchor": {"tessera_entries_per_s": TESSERA_ANCHOR}}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await bench_appends(f"{tmp}/ledger.db", args.n, args.batch)
    try:
        results["postgresql"] = await bench_appends(args.pg, args.n, args.batch)
    except Exception as exc:  # unreachable server or unfinished adapter: say so instead of failing
        results["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    results["access_logging"] = await bench_access_overhead(args.requests)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ns = parser.parse_args()
    out = asyncio.run(main(ns))
    print(json.dumps(out, indent=2))
    path = Path(__file__).parent / "results" / f"ledger-{out['date']}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {path}")
