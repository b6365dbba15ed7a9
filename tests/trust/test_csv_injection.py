"""Finding 3 of issue #20: CSV exports escape cells a spreadsheet would run as a formula (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

from trustcity import City

from citybrain.trust.data import encode

EVIL = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1", "\r=1+1"]


def test_cells_that_start_a_formula_are_escaped() -> None:
    from citybrain.trust.data import csv_cell

    for text in EVIL:
        assert csv_cell(text) == "'" + text
    assert csv_cell("plain") == "plain" and csv_cell(-5) == -5 and csv_cell(2.5) == 2.5 and csv_cell(None) is None
    assert csv_cell("") == ""


async def test_open_dataset_csv_export_is_defused(city: City) -> None:
    ctx = city.rt.context("admin:test")
    attrs = {f"a{n}": {"type": "Property", "value": v} for n, v in enumerate(EVIL)}
    attrs["temperature"] = {"type": "Property", "value": -3.5}
    await city.rt.execute("entity.write", {"entity": {
        "id": "urn:ngsi-ld:WeatherObserved:w1", "type": "WeatherObserved",
        "location": {"type": "Point", "coordinates": [116.2, 39.2]}, "attrs": attrs}}, ctx)
    new = {"id": "weather-all", "title": "Weather", "owner": "meteorology", "classification": "open",
           "source": {"kind": "entities", "types": ["WeatherObserved"]}, "fields": []}
    r = await city.client.post("/api/v1/catalog", json=new, headers=city.auth("data_officer"))
    assert r.status_code == 201, r.text
    r = await city.client.get("/api/v1/data/weather-all", params={"format": "csv"}, headers=city.auth("external_user"))
    assert r.status_code == 200, r.text
    lines = [line for line in r.text.splitlines(keepends=True) if not line.startswith("# ")]
    table = list(csv.reader(io.StringIO("".join(lines))))
    cells = [c for row in table for c in row]
    for c in cells:
        assert not c.startswith(("=", "+", "@", "\t", "\r")) and not (c.startswith("-") and not _number(c)), c
    for text in EVIL:
        assert "'" + text in cells
    assert "-3.5" in cells  # numbers stay numbers


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_provenance_lines_cannot_start_a_row() -> None:
    body = encode([{"id": "x"}], "csv", {"dataset": "d\n=cmd|' /C calc'!A0", "grant": "open"}).decode()
    assert all(line.startswith("# ") for line in body.splitlines()[:2]) and "\n=cmd" not in body
