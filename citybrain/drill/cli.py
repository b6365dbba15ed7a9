"""`citybrain drill <plan>`: rehearse a plan against the demo city in a sandbox and write the report."""

from __future__ import annotations

import asyncio

import typer

from citybrain.errors import CityBrainError


def drill_command(
    plan: str = typer.Argument(..., help="a shipped plan (rainstorm, smog) or a plan file path"),
    out: str = typer.Option("var/drills", help="directory for the report files"),
    size: str = typer.Option("tiny", help="demo city size: tiny, small, medium"),
    fmt: str = typer.Option("md,html,json", "--format", help="report formats, comma-separated: md, html, json"),
    auto_confirm: bool = typer.Option(True, help="confirm proposed levels automatically (as a drill does)"),
) -> None:
    """Run a plan against the demo city's recorded scenario in a sandbox; write timeline, tasks, resources."""
    from citybrain.drill import run_drill

    formats = tuple(f.strip() for f in fmt.split(",") if f.strip())
    try:
        result = asyncio.run(run_drill(plan, out, size, auto_confirm, formats))
    except CityBrainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    r = result.report
    t = r["tasks"]
    run = r["runs"][0] if r["runs"] else None
    typer.echo(f"drill {r['plan']}: {r['hours']} recorded hours in {r['wall_seconds']} s")
    typer.echo(f"  run: {run['state'] if run else 'never triggered'}"
               + (f", level {run['level']}, proposed {run['proposed_at']}, ended {run['ended_at']}" if run else ""))
    typer.echo(f"  tasks: {t['issued']} issued, {t['acknowledged']} acknowledged (median {t['ack_minutes']['median']}"
               f" min), {t['done']} done (median {t['done_minutes']['median']} min), {t['on_time']} on time")
    typer.echo(f"  resources: {r['resources']['resources']} dispatched; final mode {(r['final_mode'] or {}).get('mode')}")
    for path in result.files:
        typer.echo(f"  wrote {path}")
