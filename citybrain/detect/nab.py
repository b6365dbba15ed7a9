"""Run the production detector over a NAB-style data tree (``<category>/<file>.csv``) and write scores."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from citybrain.detect.detector import default_detector

__all__ = ["parse_timestamp", "run_nab", "score_csv"]


def parse_timestamp(text: str) -> float:
    """Parse a NAB timestamp (``YYYY-MM-DD HH:MM:SS``, naive = UTC) into epoch seconds."""
    stamp = dt.datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def score_csv(src: Path, dst: Path) -> int:
    """Score one ``timestamp,value`` CSV into ``timestamp,value,anomaly_score``; returns the row count."""
    det = default_detector()
    score = det.score
    dst.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        reader = csv.reader(fin)
        header = [h.strip() for h in next(reader)]
        try:
            ti, vi = header.index("timestamp"), header.index("value")
        except ValueError as exc:
            raise ValueError(f"{src}: expected columns timestamp,value, got {header}") from exc
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for row in reader:
            if not row:
                continue
            ts_text, val_text = row[ti], row[vi]
            try:
                value = float(val_text)
            except ValueError:
                value = float("nan")
            s = score(parse_timestamp(ts_text), value)
            writer.writerow([ts_text, val_text, f"{s:.6f}"])
            rows += 1
    return rows


def run_nab(data_dir: Path, out_dir: Path) -> dict[str, int]:
    """Score every CSV below ``data_dir`` into ``out_dir/<category>/<file>.csv``; returns rows per file.

    Only data files are read (never labels); each file gets a fresh ``default_detector()``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no such data directory: {data_dir}")
    result: dict[str, int] = {}
    for src in sorted(data_dir.rglob("*.csv")):
        rel = src.relative_to(data_dir)
        result[rel.as_posix()] = score_csv(src, out_dir / rel)
    return result
