"""Benchmark: durable ingest of observations through the store vs raw executemany, on SQLite and PostgreSQL.

Each run uses a fresh database (a SQLite file, a PostgreSQL schema). In it, the store ingests the data set
(WriteObservations batches from several concurrent writers, so group commit works), the tables are
emptied, and raw executemany ingests the same rows (history insert + state upsert, the SQLite adapter's
SQL, one transaction per batch) into the same tables; the order alternates between runs. Reports obs/s, median
of the runs, and the ratio store/raw; writes JSON to bench/results/store-<date>.json.

    python bench/bench_store.py [--rows 100000] [--batch 500] [--writers 4] [--runs 3] [--pg URL | --no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from citybrain.model.entity import ObservationRow  # noqa: E402
from citybrain.store.base import Store, WriteObservations  # noqa: E402
from citybrain.store.postgres import PostgresStore  # noqa: E402
from citybrain.store.sqlite import _HISTORY, _OBS_STATE, SqliteStore  # noqa: E402

PG_HISTORY = (
    "INSERT INTO history(entity_id, name, observed_at, value, unit) VALUES (%s,%s,%s,%s,%s) "
    "ON CONFLICT (entity_id, name, observed_at, instance) DO UPDATE SET value=excluded.value, unit=excluded.unit"
)
PG_STATE = _OBS_STATE.replace("?", "%s")
# the same settings as SqliteStore's connections, so that the ratio measures the store, not the settings
SQLITE_PRAGMAS = ["journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "wal_autocheckpoint=10000"]
Batches = list[list[ObservationRow]]


def dataset(rows: int, batch: int, sensors: int, offset: int) -> Batches:
    """Batches of observations: `sensors` entities x 2 attributes, one reading per second each."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=offset)
    out: list[ObservationRow] = []
    i = 0
    while len(out) < rows:
        t = (base + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in range(sensors):
            out.append(ObservationRow(f"urn:ngsi-ld:Sensor:{s:05d}", "speed", t, 30.0 + (i * s) % 50, "KMH"))
            out.append(ObservationRow(f"urn:ngsi-ld:Sensor:{s:05d}", "flow", t, (i + s) % 900))
        i += 1
    out = out[:rows]
    return [out[k : k + batch] for k in range(0, rows, batch)]


def encoded(batches: Batches) -> list[list[tuple[Any, ...]]]:
    """Raw executemany rows (entity, attr, observed_at, value JSON, unit), pre-encoded: raw's best case."""
    return [
        [(r.entity_id, r.attr, r.observed_at, orjson.dumps(r.value).decode(), r.unit) for r in b]
        for b in batches
    ]


async def store_ingest(store: Store, batches: Batches, writers: int) -> float:
    """Ingest through store.apply from `writers` concurrent tasks; return seconds."""

    async def writer(k: int) -> None:
        for b in batches[k::writers]:
            await store.apply([WriteObservations(b)])

    start = time.perf_counter()
    await asyncio.gather(*(writer(k) for k in range(writers)))
    return time.perf_counter() - start


def raw_sqlite(path: str, rows: list[list[tuple[Any, ...]]]) -> float:
    """Ingest with plain sqlite3 (the store's PRAGMAs), one transaction per batch; return seconds."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    start = time.perf_counter()
    for b in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_HISTORY, b)
        conn.executemany(_OBS_STATE, [(e, a, v, t, u) for e, a, t, v, u in b])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def raw_pg(url: str, rows: list[list[tuple[Any, ...]]]) -> float:
    """Ingest with plain psycopg executemany (pipelined), one transaction per batch; return seconds."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for b in rows:
            with conn.cursor() as cur:
                cur.executemany(PG_HISTORY, b)
                cur.executemany(PG_STATE, [(e, a, v, t, u) for e, a, t, v, u in b])
            conn.commit()
        return time.perf_counter() - start


def clear(db: str, target: str) -> None:
    """Empty the state and history tables, so that both measurements start from the same empty tables."""
    if db == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None, timeout=30)
        conn.execute("DELETE FROM history")
        conn.execute("DELETE FROM attrs")
        conn.close()
    else:
        with psycopg.connect(target, autocommit=True) as pg:
            pg.execute("TRUNCATE history, attrs")


async def one_run(
    db: str,
    target: str,
    make: Callable[[], Store],
    raw: Callable[[list[list[tuple[Any, ...]]]], float],
    args: argparse.Namespace,
    run: int,
) -> tuple[float, float]:
    """Store and raw ingest into one fresh database, emptied in between, alternating the order.

    Returns (store, raw) obs/s."""
    a = dataset(args.rows, args.batch, args.sensors, offset=0)
    b = encoded(a)
    store = make()
    await store.open()
    try:
        ours = theirs = 0.0
        for i, step in enumerate(("store", "raw") if run % 2 == 0 else ("raw", "store")):
            if i:
                await asyncio.to_thread(clear, db, target)
            if step == "store":
                ours = args.rows / await store_ingest(store, a, args.writers)
            else:
                theirs = args.rows / await asyncio.to_thread(raw, b)
            assert await store.history_count() == args.rows, "lost rows"
        print(
            f"  {db} run {run + 1}: store {ours:,.0f} obs/s ({store.commits} commits), "
            f"raw {theirs:,.0f} obs/s",
            file=sys.stderr,
        )
    finally:
        await store.close()
    return ours, theirs


async def bench_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    """Median store and raw obs/s on SQLite."""
    res = []
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as tmp:
        for run in range(args.runs):
            path = os.path.join(tmp, f"run{run}.db")
            res.append(
                await one_run(
                    "sqlite", path, partial(SqliteStore, path), partial(raw_sqlite, path), args, run
                )
            )
    return summarise("sqlite", res)


async def bench_pg(args: argparse.Namespace) -> dict[str, Any]:
    """Median store and raw obs/s on PostgreSQL (a fresh schema per run)."""
    res = []
    for run in range(args.runs):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
        try:
            res.append(
                await one_run("postgres", url, partial(PostgresStore, url), partial(raw_pg, url), args, run)
            )
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return summarise("postgres", res)


def summarise(db: str, res: list[tuple[float, float]]) -> dict[str, Any]:
    """Medians and ratio of (store, raw) obs/s pairs."""
    ours = statistics.median(r[0] for r in res)
    theirs = statistics.median(r[1] for r in res)
    return {
        "db": db,
        "store_obs_s": round(ours),
        "raw_obs_s": round(theirs),
        "ratio": round(ours / theirs, 3),
        "runs": [{"store_obs_s": round(a), "raw_obs_s": round(b)} for a, b in res],
    }


def main() -> None:
    """Run the benchmark, print a markdown table, write JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="observations per measurement")
    p.add_argument("--batch", type=int, default=500, help="rows per WriteObservations / raw transaction")
    p.add_argument("--writers", type=int, default=4, help="concurrent store writers")
    p.add_argument("--sensors", type=int, default=1000, help="entities (x2 attributes)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--pg", default=os.environ.get("CITYBRAIN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    p.add_argument("--no-pg", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()

    async def run_all() -> list[dict[str, Any]]:
        out = [] if args.no_sqlite else [await bench_sqlite(args)]
        return out if args.no_pg else [*out, await bench_pg(args)]

    load_before = os.getloadavg()
    results = asyncio.run(run_all())
    load = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    print(
        f"\nDurable ingest, {args.rows:,} observations per run, batches of {args.batch}, "
        f"{args.writers} store writers, median of {args.runs} runs\n"
    )
    print("| database | store obs/s | raw executemany obs/s | store / raw |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['db']} | {r['store_obs_s']:,} | {r['raw_obs_s']:,} | {r['ratio']:.0%} |")
    print(
        f"\n{os.cpu_count()} CPUs; load average before {load[0]}, after {load[3]} "
        "(other work on the machine skews absolute figures; the ratio is measured side by side)"
    )
    doc = {
        "benchmark": "store-ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
            "loadavg_1m_before_after": [load[0], load[3]],
        },
        "params": {k: v for k, v in vars(args).items() if k not in ("pg", "out")},
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"store-{dt.date.today().isoformat()}.json"
    target.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten {target}")


if __name__ == "__main__":
    main()
