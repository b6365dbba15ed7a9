"""Regenerate the demo data extract from the shared data folder.

    python -m citybrain.demo.extract /work/shared/data [--out citybrain/demo/data]

Copies, unchanged, the station-hours of the 12 Beijing stations inside WINDOWS (Beijing local time) and the
I-94 traffic hours that, shifted 52 weeks back (same weekday, same wall-clock hour), land inside WINDOWS.
Output is deterministic (gzip without timestamps), so re-running it gives identical files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

from citybrain.demo.series import AIR_COLUMNS, DATA_DIR, LOCAL_FORMAT, TRAFFIC_SHIFT, WINDOWS

AIR_HEADER = ["local_time", "station", *AIR_COLUMNS]
TRAFFIC_HEADER = ["local_time", "source_time", "traffic_volume"]


def _in_windows(local: str) -> bool:
    day = local[:10]
    return any(first <= day < after for first, after in WINDOWS.values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_gz(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def extract_air(src: Path) -> tuple[list[list[str]], dict[str, str]]:
    """Return the air rows inside WINDOWS (sorted by time, station) and the source files' sha256."""
    rows: list[list[str]] = []
    sources: dict[str, str] = {}
    for path in sorted(src.glob("PRSA_Data_*_20130301-20170228.csv")):
        sources[path.name] = _sha256(path)
        with path.open(encoding="utf-8", newline="") as fh:
            for rec in csv.DictReader(fh):
                local = f"{int(rec['year']):04d}-{int(rec['month']):02d}-{int(rec['day']):02d} {int(rec['hour']):02d}:00"
                if _in_windows(local):
                    rows.append([local, rec["station"], *(rec[c] for c in AIR_COLUMNS)])
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, sources


def extract_traffic(path: Path) -> list[list[str]]:
    """Return the I-94 hours shifted onto the Beijing calendar that fall inside WINDOWS."""
    rows: list[list[str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            source = datetime.strptime(rec["datetime"], "%Y-%m-%d %H:%M:%S")
            local = (source + TRAFFIC_SHIFT).strftime(LOCAL_FORMAT)
            if _in_windows(local):
                volume = rec["traffic_volume"].strip() or "NA"
                rows.append([local, source.strftime(LOCAL_FORMAT), volume])
    rows.sort(key=lambda r: r[0])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Write air.csv.gz, traffic.csv.gz, stations.csv and manifest.json into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", type=Path, help="the shared data folder (with beijing-air/ and traffic-i94/)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: the package's data/)")
    args = parser.parse_args(argv)
    air_dir = args.shared / "beijing-air"
    traffic_csv = args.shared / "traffic-i94" / "traffic_hourly.csv"
    if not air_dir.is_dir() or not traffic_csv.is_file():
        print(f"error: {args.shared} has no beijing-air/ or traffic-i94/traffic_hourly.csv", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    air_rows, sources = extract_air(air_dir)
    traffic_rows = extract_traffic(traffic_csv)
    _write_gz(out / "air.csv.gz", AIR_HEADER, air_rows)
    _write_gz(out / "traffic.csv.gz", TRAFFIC_HEADER, traffic_rows)
    if (air_dir / "stations.csv").resolve() != (out / "stations.csv").resolve():
        shutil.copyfile(air_dir / "stations.csv", out / "stations.csv")
    sources["stations.csv"] = _sha256(air_dir / "stations.csv")
    sources["traffic_hourly.csv"] = _sha256(traffic_csv)
    manifest = {
        "windows_beijing_local": WINDOWS,
        "traffic_shift_days": TRAFFIC_SHIFT.days,
        "rows": {"air.csv.gz": len(air_rows), "traffic.csv.gz": len(traffic_rows)},
        "source_sha256": sources,
        "made_by": "python -m citybrain.demo.extract <shared data folder>",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"air rows {len(air_rows)}, traffic rows {len(traffic_rows)}, {size / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
