"""`citybrain evaluate`: compute the indicators for a period and area and write an HTML (or PDF) report."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import typer

from citybrain.config import Settings
from citybrain.ports import Ports


async def build_report(rt: Any, start: str, end: str, area: str | None, trend: int = 3) -> tuple[dict[str, Any], str]:
    """Evaluate on a running runtime and return (result, HTML report)."""
    from citybrain.indicators import board_of
    from citybrain.indicators.report import render_html

    result = await board_of(rt).evaluate(start, end, area, trend=trend)
    places = rt.ports.find(Ports.places)
    name = None
    if places is not None and result.get("area") in places:
        p = places.get(result["area"])
        name = f'{p.value("nameZh") or ""} {p.value("name") or result["area"]}'.strip()
    return result, render_html(result, name)


async def write_outputs(result: dict[str, Any], html: str, out: Path | None, pdf: Path | None,
                        as_json: Path | None) -> list[Path]:
    """Write the HTML, PDF and JSON outputs that were asked for; return their paths."""
    from citybrain.indicators.pdf import html_to_pdf

    written: list[Path] = []
    if out is not None and out.suffix.lower() == ".pdf":
        pdf, out = out, None
    if out is not None:
        written.append(save(out, html))
    if pdf is not None:
        written.append(await html_to_pdf(html, pdf, os.environ.get("CITYBRAIN_CHROMIUM")))  # the CLI's own env
    if as_json is not None:
        written.append(save(as_json, json.dumps(result, ensure_ascii=False, indent=2, default=str)))
    return written


def save(path: Path, text: str) -> Path:
    """Write a UTF-8 text file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def evaluate_command(
    from_: str = typer.Option(..., "--from", help="first day (YYYY-MM-DD) or UTC timestamp of the period"),
    to: str = typer.Option(..., "--to", help="last day (inclusive) or end timestamp (exclusive)"),
    area: str = typer.Option(None, help="place URN (city, district, community); default: the city"),
    out: Path = typer.Option(None, "--out", help="report file: .html, or .pdf to print it"),
    pdf: Path = typer.Option(None, "--pdf", help="also print the report to this PDF file"),
    as_json: Path = typer.Option(None, "--json", help="also write the computed numbers as JSON"),
    store: str = typer.Option(None, help="SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]"),
    indicators: Path = typer.Option(None, "--indicators", help="indicator YAML file (default: the shipped one)"),
    weights: Path = typer.Option(None, "--weights", help="YAML {indicator id: weight} overriding the weights"),
    trend: int = typer.Option(3, help="previous periods to compute for the trend"),
) -> None:
    """Evaluate the city's operation (four dimensions, standard indicators) and write the report."""
    from citybrain.errors import CityBrainError
    from citybrain.runtime import COMPONENTS, CityBrain

    settings = Settings.from_env(store=store)
    settings.extra.setdefault("cases", {})["checker"] = False
    conf = settings.extra.setdefault("indicators", {})
    if indicators is not None:
        conf["file"] = str(indicators)
    if weights is not None:
        conf["weights"] = str(weights)
    components = list(COMPONENTS) + ([] if "citybrain.indicators" in COMPONENTS else ["citybrain.indicators"])

    async def main() -> tuple[dict[str, Any], list[Path]]:
        async with CityBrain(settings, components=components) as rt:
            result, html = await build_report(rt, from_, to, area, trend)
        return result, await write_outputs(result, html, out, pdf, as_json)

    try:
        result, written = asyncio.run(main())
    except CityBrainError as exc:
        typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"score {result['score']} / 100 for {result['area']} {result['from']} .. {result['to']} "
               f"({result['no_data']} indicators without data)")
    for dim in result["dimensions"].values():
        typer.echo(f"  {dim['name']['en']}: {dim['score']}")
    for path in written:
        typer.echo(f"wrote {path}")
