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
    """Serve the demo city (no replay, so the test controls what happens), populated, and yield its base URL."""
    for base in _serve(tmp_path_factory.mktemp("dash") / "city.db", "off"):
        populate(base)
        yield base


def actor(name: str) -> dict[str, str]:
    """Return the header naming who acts (honoured with auth off)."""
    return {"X-Citybrain-Actor": name}


def populate(base: str) -> None:
    """Give the test city a past and a workload, through the public API only.

    Two recorded days of the shipped demo data (15-16 July 2016: dry, clean air, so no alert is raised) for
    trends and latest values, and cases in several lifecycle states: one reported by hotline (intake), some
    dispatched by a grid worker, one worked through to closed, and one made overdue by the deadline
    checker's own command (case.escalate as system:deadline-checker)."""
    from citybrain.demo.replay import hour_batches

    batch: list[dict] = []
    for _, items in hour_batches("2016-07-15T00:00:00Z", "2016-07-17T00:00:00Z"):
        batch += items
        if len(batch) >= 1500:
            r = httpx.post(base + "/api/v1/observations", json=batch, timeout=60)
            assert r.status_code == 200, r.text
            batch = []
    if batch:
        assert httpx.post(base + "/api/v1/observations", json=batch, timeout=60).status_code == 200
    cells = httpx.get(base + "/api/v1/map/places", params={"level": "Grid"}).json()["features"]

    def point(k: int) -> tuple[float, float]:
        ring = cells[(k * 37) % len(cells)]["geometry"]["coordinates"][0]
        return (ring[0][0] + ring[2][0]) / 2, (ring[0][1] + ring[2][1]) / 2

    def report(k: int, category: str, text: str, channel: str = "grid") -> str:
        lon, lat = point(k)
        r = httpx.post(base + "/api/v1/cases", json={"category": category, "channel": channel, "lon": lon, "lat": lat,
                                                     "description": text, "title": text.split(" ", 1)[0]},
                       headers=actor("grid:wang"))
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def step(case: str, name: str, who: str, note: str = "") -> None:
        r = httpx.post(base + f"/api/v1/cases/{case}/{name}", json={"note": note} if note else {}, headers=actor(who))
        assert r.status_code == 200, r.text

    report(1, "E0102", "垃圾堆放 garbage piled at the market entrance", channel="hotline")
    report(2, "C0110", "路灯不亮 street light out on the east side")
    accepted = report(3, "C0101", "井盖移位 manhole cover displaced")
    step(accepted, "accept", "dept:water:zhao")
    closed = report(4, "C0110", "路灯闪烁 flickering street light")
    for name, who in (("accept", "dept:urban:zhao"), ("feedback", "dept:urban:zhao"), ("verify", "supervisor:li"),
                      ("close", "supervisor:li")):
        step(closed, name, who, note="done on site" if name == "feedback" else "")
    late = report(5, "C0110", "路灯损坏 broken lamp post by the school")
    r = httpx.post(base + "/api/v1/commands/case.escalate", json={"id": late, "task": "T1", "level": 1},
                   headers=actor("system:deadline-checker"))
    assert r.status_code == 200, r.text


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
