"""`citybrain resources …`: import resources from CSV and list them with their availability."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from citybrain.config import Settings
from citybrain.errors import CityBrainError

resources_app = typer.Typer(help="Resources (teams, vehicles, shelters, supplies): import, list.",
                            no_args_is_help=True)
console = Console()
STORE_HELP = "SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]"


def _run(store: str | None, fn: Any) -> Any:
    from citybrain.runtime import CityBrain

    async def main() -> Any:
        comps = ["citybrain.model.commands", "citybrain.dispatch"]
        async with CityBrain(Settings.from_env(store=store), components=comps) as rt:
            return await fn(rt)

    try:
        return asyncio.run(main())
    except CityBrainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None


@resources_app.command("import")
def import_csv(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with columns id, name, resourceType, "
                                "capability (';'-separated), capacity, unitCode, lon, lat, owner, status"),
    store: str = typer.Option(None, help=STORE_HELP),
) -> None:
    """Create or update resources from a CSV file (each row is validated; errors name the line)."""
    from citybrain.dispatch.resources import parse_csv

    try:
        payloads = parse_csv(file.read_text(encoding="utf-8"), file.name)
    except CityBrainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None

    async def go(rt: Any) -> int:
        ctx = rt.context("admin:cli")
        places = rt.ports.places
        for p in payloads:
            lon, lat = p["location"]["coordinates"]
            p["place"] = places.locate(lon, lat)
            await rt.execute("entity.write", {"entity": p, "mode": "upsert"}, ctx.child())
        return len(payloads)

    n = _run(store, go)
    typer.echo(f"imported {n} resources")


@resources_app.command("list")
def list_resources(store: str = typer.Option(None, help=STORE_HELP),
                   capability: str = typer.Option(None, help="only resources with this capability")) -> None:
    """List resources with type, capability, capacity, location and availability."""

    async def go(rt: Any) -> list[dict[str, Any]]:
        return [r.public() for r in await rt.ports.dispatch.resources()]

    rows = [r for r in _run(store, go) if capability is None or capability in r["capability"]]
    table = Table("id", "type", "capability", "capacity", "lon, lat", "status", "units free")
    for r in rows:
        table.add_row(r["id"].rsplit(":", 1)[-1], r["type"], ", ".join(r["capability"]),
                      f"{r['capacity']} {r['unit'] or ''}".strip(), f"{r['lon']:.4f}, {r['lat']:.4f}", r["status"],
                      str(r["units"]))
    console.print(table)
    typer.echo(f"{len(rows)} resources")
