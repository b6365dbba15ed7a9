"""Print the HTML report to PDF with the system's Chromium (headless, offline, through Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

from citybrain.errors import Unavailable

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path(given: str | None = None) -> str | None:
    """Return the Chromium executable (`given`, e.g. CITYBRAIN_CHROMIUM, else chromium on PATH), or None."""
    if given and Path(given).exists():
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


async def html_to_pdf(html: str, out: str | Path, chromium: str | None = None) -> Path:
    """Render an HTML document to an A4 PDF file with `chromium` (or one on PATH); Unavailable without one."""
    exe = chromium_path(chromium)
    if exe is None:
        raise Unavailable("PDF needs Chromium: install it (apt-get install chromium) or set CITYBRAIN_CHROMIUM")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise Unavailable("PDF needs Playwright for Python (pip install playwright)") from None
    target = Path(out)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, args=ARGS)
        try:
            page = await browser.new_page()
            await page.set_content(html, wait_until="load")
            await page.pdf(path=str(target), format="A4", print_background=True,
                           margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        finally:
            await browser.close()
    return target
