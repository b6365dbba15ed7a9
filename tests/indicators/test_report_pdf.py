"""The report: HTML with inline SVG charts and a table per dimension, printed to a PDF that is not blank."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fixture import DAY, build, runtime
from tools import require_executable

from citybrain.indicators.cli import build_report, write_outputs


async def test_html_and_pdf_report(tmp_path: Path) -> None:
    chromium = require_executable("chromium", "apt-get install -y chromium")
    pdftoppm = require_executable("pdftoppm", "apt-get install -y poppler-utils")
    rt = runtime(tmp_path)
    await rt.start()
    try:
        await build(rt)
        result, html = await build_report(rt, DAY, DAY, None, trend=2)
    finally:
        await rt.stop()
    assert html.count("<svg") >= 3 and html.count("<table>") == 4  # dimensions, trend, areas; 4 dimension tables
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # works offline
    assert "ISO 37120:2018" in html and "ISO 37123:2019" in html and "no data" in html
    assert "▲" in html  # what moved since the previous day
    written = await write_outputs(result, html, tmp_path / "report.html", tmp_path / "report.pdf", None)
    assert [p.name for p in written] == ["report.html", "report.pdf"] and chromium
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    pixels = first_page(pdftoppm, tmp_path / "report.pdf", tmp_path / "page")
    mean = sum(pixels) / len(pixels)
    variance = sum((p - mean) ** 2 for p in pixels) / len(pixels)
    assert variance > 100, variance  # a blank page has (almost) no variance
    assert sum(1 for p in pixels if p < 128) > 500  # and there is dark text on it


def first_page(pdftoppm: str, pdf: Path, prefix: Path) -> bytes:
    """Render the first page of a PDF in grey at 40 dpi and return its pixels."""
    subprocess.run([pdftoppm, "-gray", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(prefix)], check=True,
                   timeout=60)
    return read_pgm(next(prefix.parent.glob(prefix.name + "*.pgm")))


def read_pgm(path: Path) -> bytes:
    """Return the 8-bit grey pixels of a binary PGM (P5) file, as pdftoppm -gray writes it."""
    data = path.read_bytes()
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P5" and fields[3] == b"255", fields
    width, height = int(fields[1]), int(fields[2])
    return data[pos + 1:pos + 1 + width * height]
