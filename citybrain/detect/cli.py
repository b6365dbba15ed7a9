"""`citybrain detect`: the production anomaly detector over NAB-style CSV files."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def detect_command(
    nab: Path = typer.Option(..., "--nab", help="folder of timestamp,value CSV files (NAB layout)"),
    out: Path = typer.Option(..., "--out", help="folder for <category>/<file>.csv with anomaly_score"),
) -> None:
    """Run the production anomaly detector over NAB-style CSVs, for scoring with nab_score.py."""
    from citybrain.detect.nab import run_nab

    result = run_nab(nab, out)
    typer.echo(json.dumps(result, default=str))
