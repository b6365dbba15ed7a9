"""`make reliability`: every scenario at full length, ending with the table (not part of CI).

    python reliability/run.py [--only crash,overload] [--soak-seconds 1800] [--quick]

Scenarios: crash (SIGKILL under HTTP + MQTT QoS 1), dependency faults (private PostgreSQL and NATS
restarted under load), partition (the federation tests), fuzz (schemathesis on every endpoint), overload
(2x measured capacity) and soak (half the measured peak for 30 minutes). Results are also written to
reliability/results/<date>.json. Exit code 1 when any scenario failed (lost or duplicated data included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reliability import pressure, scenarios  # noqa: E402
from reliability.check import Result, table  # noqa: E402


def main() -> None:
    """Run the chosen scenarios and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="crash,dependencies,partition,fuzz,overload,mqtt-flow,soak")
    ap.add_argument("--soak-seconds", type=float, default=1800.0)
    ap.add_argument("--quick", action="store_true", help="the short versions (as in make test)")
    args = ap.parse_args()
    q = args.quick
    peak: dict[str, float] = {}

    def overload() -> Result:
        r = pressure.overload(factor=2.0, measure=5.0 if q else 15.0, seconds=5.0 if q else 60.0)
        peak["obs_s"] = float(r.details.get("capacity_obs_s", 0.0))
        return r

    def soak() -> Result:
        rate = peak.get("obs_s") or pressure.overload(measure=10.0, seconds=1.0).details["capacity_obs_s"]
        return pressure.soak(seconds=10.0 if q else args.soak_seconds, rate=max(50.0, rate / 2), strict=not q)

    plan: list[tuple[str, Callable[[], Result]]] = [
        ("crash", lambda: scenarios.crash(seconds=3.0 if q else 30.0, down=1.0 if q else 5.0)),
        ("dependencies", lambda: scenarios.dependencies(seconds=2.0 if q else 10.0, outage=2.0 if q else 12.0,
                                                        postgres=not q)),
        ("partition", scenarios.partition),
        ("fuzz", lambda: scenarios.fuzz(examples=3 if q else 10)),
        ("overload", overload),
        ("mqtt-flow", lambda: pressure.mqtt_flow(seconds=5.0 if q else 30.0)),
        ("soak", soak),
    ]
    wanted = {n for n in args.only.split(",") if n}
    results: list[Result] = []
    for name, fn in plan:
        if wanted and name not in wanted:
            continue
        print(f"== {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as exc:  # a scenario that cannot run is a failed row, not a crashed suite
            result = Result(name, ok=False, notes=[f"error: {exc!r}"])
            traceback.print_exc()
        result.details["seconds"] = round(time.monotonic() - t0, 1)
        print(table([result]).splitlines()[-1], flush=True)
        results.append(result)
    print()
    print(table(results))
    out = Path(__file__).parent / "results" / f"{dt.date.today().isoformat()}.json"
    out.parent.mkdir(exist_ok=True)
    rows = [r.to_dict() for r in results]
    if out.exists() and wanted:  # a partial run updates its rows in the day's file and keeps the others
        names = {r["scenario"] for r in rows}
        rows = [r for r in json.loads(out.read_text()).get("results", []) if r["scenario"] not in names] + rows
    out.write_text(json.dumps({"date": dt.date.today().isoformat(), "quick": q, "load": os.getloadavg(),
                               "results": rows}, indent=2, default=str) + "\n")
    if len(rows) > len(results):
        print(f"\nall results of {dt.date.today().isoformat()}:\n")
        print(table([Result(**{k: v for k, v in r.items()}) for r in rows]))
    print(f"\nresults: {out}")
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
