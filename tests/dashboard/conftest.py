"""A running demo city (subprocess) and a headless Chromium page for the dashboard tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services import require_executable

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the demo city (no replay, so the test controls what happens) and yield its base URL."""
    yield from _serve(tmp_path_factory.mktemp("dash") / "city.db", "off")


@pytest.fixture(scope="session")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Serve the tiny demo city with authentication on; yield its URL and its store path."""
    store = tmp_path_factory.mktemp("secure") / "city.db"
    for base in _serve(store, "on", size="tiny"):
        yield base, store


def _serve(store: Path, auth: str, size: str = "small") -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, CITYBRAIN_AUTH=auth)
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain", "serve", "--demo", "--no-replay", "--size", size, "--auth", auth,
         "--port", str(port), "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/-/health", timeout=1).status_code == 200 and (
                    auth == "on" or httpx.get(base + "/api/v1/stats", timeout=1).json()["entities"].get("Grid")):
                break
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "server exited")
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("demo server did not start within 60 s")
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Launch Debian's Chromium through Playwright (never a downloaded browser).

    Module scope: Playwright's sync API keeps an event loop running while it is open, which would
    break every async test collected after this module."""
    path = require_executable("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()
