"""`make bench`: run every bench/bench_*.py, then collect this run's results into one dated report.

    python bench/run.py [--only store,bus] [--full] [--timeout 1200]

Each benchmark runs as a subprocess with short parameters (`--full`: their own defaults) and a timeout; a
failure is recorded and the run goes on. The machine is shared (2 cores), so the 1/5/15-minute load average
is recorded before and after each benchmark. The result JSONs each benchmark wrote during this run are
normalised by bench/adapters.py and written to bench/results/<date>.json and <date>.md: for each figure our
median, the peer's median measured in the same run, and the ratio; published anchors that cannot run here
are listed with their source.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from adapters import ANCHORS, adapt  # noqa: E402

# Short parameters per benchmark (make bench should finish in well under an hour on this machine).
SHORT: dict[str, list[str]] = {
    "store": ["--rows", "30000", "--runs", "3"],
    "bus": ["--n", "5000", "--runs", "3"],
    "situation": ["--seconds", "5"],
    "ledger": ["--n", "10000", "--requests", "100"],
    "mqtt": ["--n", "20000", "--runs", "5"],
    "cases": ["--cases", "500"],
    "federation": ["--n", "2000", "--partition", "20"],
}
TIMEOUTS: dict[str, float] = {"mqtt": 1800.0}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_one(script: Path, full: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark script; return what happened and which result files it wrote."""
    name = script.stem.removeprefix("bench_")
    args = [] if full else SHORT.get(name, [])
    before = {p: p.stat().st_mtime for p in RESULTS.glob("*.json")}
    started = time.time()
    record: dict[str, Any] = {"name": name, "script": str(script.relative_to(ROOT)), "args": args,
                              "load_before": _load()}
    print(f"== {name} {' '.join(args)} (load {record['load_before']})", flush=True)
    log = RESULTS / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as out:
            proc = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=TIMEOUTS.get(name, timeout),
                                  env=os.environ | {"PYTHONPATH": str(ROOT)})
        record["exit_code"] = proc.returncode
        record["status"] = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        record["status"] = "timeout"
    record["seconds"] = round(time.time() - started, 1)
    record["load_after"] = _load()
    record["log"] = str(log.relative_to(ROOT))
    written = [p for p in RESULTS.glob("*.json")
               if p.stat().st_mtime >= started - 1 and before.get(p) != p.stat().st_mtime and _is_bench_file(p)]
    record["results"] = [str(p.relative_to(ROOT)) for p in sorted(written)]
    if record["status"] != "ok":
        record["tail"] = log.read_text(errors="replace")[-1500:]
    print(f"   {record['status']} in {record['seconds']} s (load {record['load_after']}); "
          f"results: {', '.join(record['results']) or 'none'}", flush=True)
    return record


def _is_bench_file(path: Path) -> bool:
    """Result files are <name>-<date>.json; our own reports are <date>.json."""
    stem = path.stem
    return not (len(stem) == 10 and stem[4] == "-" and stem[7] == "-")


def collect(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adapt every result file of this run into figures, tagged with their benchmark."""
    figures: list[dict[str, Any]] = []
    for rec in records:
        rec["notes"] = []
        for rel in rec["results"]:
            path = ROOT / rel
            prefix = path.stem.rsplit("-", 3)[0]
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                rec["notes"].append(f"{rel}: unreadable ({exc})")
                continue
            found, note = adapt(prefix, doc)
            if note:
                rec["notes"].append(note)
            for f in found:
                figures.append({"benchmark": rec["name"], **f, "source": rel})
    return figures


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def markdown(date: str, meta: dict[str, Any], records: list[dict[str, Any]], figures: list[dict[str, Any]]) -> str:
    """Render the report as markdown."""
    lines = [f"# citybrain benchmarks, {date}", "",
             f"Machine: {meta['machine']}, {meta['cpus']} CPUs, Python {meta['python']}; load average "
             f"(1/5/15 min) {meta['load_before']} before and {meta['load_after']} after the run. The machine is "
             "shared: read ratios (ours/peer, same run, same machine) rather than absolute numbers.", "",
             "| benchmark | figure | unit | ours (median) | peer | peer (median) | ours/peer | better |",
             "|---|---|---|---:|---|---:|---:|---|"]
    for f in figures:
        lines.append(f"| {f['benchmark']} | {f['figure']} | {f['unit']} | {_fmt(f['ours'])} | {f['peer_name'] or '–'} "
                     f"| {_fmt(f['peer'])} | {_fmt(f['ratio'])} | {f['better']} |")
    lines += ["", "## Runs", "", "| benchmark | arguments | status | seconds | load before | load after | notes |",
              "|---|---|---|---:|---|---|---|"]
    for r in records:
        lines.append(f"| {r['name']} | {' '.join(r['args']) or '(defaults)'} | {r['status']} | {r['seconds']} "
                     f"| {r['load_before']} | {r['load_after']} | {'; '.join(r.get('notes', []))} |")
    lines += ["", "## Published anchors (not run here)", "", "| peer | beside our figure | source |", "|---|---|---|"]
    for a in ANCHORS:
        lines.append(f"| {a['peer']} | {a['compare_with']} | {a['source']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmarks and write the dated report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated benchmark names (store,bus,…)")
    ap.add_argument("--full", action="store_true", help="use each benchmark's own default parameters")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per benchmark")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    wanted = {n for n in args.only.split(",") if n}
    scripts = [p for p in sorted(HERE.glob("bench_*.py")) if not wanted or p.stem.removeprefix("bench_") in wanted]
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_before": _load(), "started": dt.datetime.now(dt.UTC).isoformat()}
    records = [run_one(s, args.full, args.timeout) for s in scripts]
    meta["load_after"] = _load()
    figures = collect(records)
    date = dt.date.today().isoformat()
    doc = {"date": date, "meta": meta, "figures": figures, "runs": records, "anchors": ANCHORS}
    (RESULTS / f"{date}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / f"{date}.md").write_text(markdown(date, meta, records, figures))
    failed = [r["name"] for r in records if r["status"] != "ok"]
    print(f"\nwrote bench/results/{date}.json and {date}.md: {len(figures)} figures; "
          f"failed: {', '.join(failed) or 'none'}")


if __name__ == "__main__":
    main()
