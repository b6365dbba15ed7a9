"""The dashboard in real headless Chromium against a running demo city (Playwright, Debian's chromium)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"

pytestmark = pytest.mark.browser


def _weather_station(base: str) -> dict:
    rows = httpx.get(base + "/api/v1/entities", params={"type": "WeatherObserved", "limit": 100}).json()
    return sorted(rows, key=lambda e: e["id"])[0]


def _downpour(base: str, station: str, hours: int = 3, mm: float = 60.0) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    items = [{"entity": station, "observedAt": (now - timedelta(hours=hours - 1 - i)).isoformat().replace("+00:00", "Z"),
              "values": {"precipitation": mm}} for i in range(hours)]
    r = httpx.post(base + "/api/v1/observations", json=items)
    assert r.status_code == 200, r.text


def _ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20000)


def test_city_view_alert_feed_and_risk_colours(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    assert page.evaluate("window.citybrainMap.cellIds().length") == len(
        httpx.get(demo_server + "/api/v1/map/places", params={"level": "Grid"}).json()["features"])
    station = _weather_station(demo_server)
    before = page.locator("#alert-feed li").count()
    started = time.monotonic()
    _downpour(demo_server, station["id"])
    page.wait_for_function(f"document.querySelectorAll('#alert-feed li').length > {before}", timeout=2000)
    assert time.monotonic() - started < 2.0  # the alert arrived over SSE, without a reload
    risk = httpx.get(demo_server + "/api/v1/risk", params={"level": "grid"}).json()
    assert risk, "the downpour should put at least one cell at risk"
    page.wait_for_timeout(300)
    colours = page.evaluate("window.citybrainMap.colors")
    for row in risk:
        assert page.evaluate(f"window.citybrainMap.fillOf({row['place']!r})") == colours[row["level"]], row
    quiet = [c for c in page.evaluate("window.citybrainMap.cellIds()") if c not in {r["place"] for r in risk}][:20]
    for cell in quiet:
        assert page.evaluate(f"window.citybrainMap.fillOf({cell!r})") == colours["none"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "city-view.png"))


def test_language_switch(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    assert page.inner_text("h1") == "城市大脑"
    assert page.inner_text("#alerts-h") == "实时预警"
    page.click("#lang")
    assert page.inner_text("h1") == "City Brain"
    assert page.inner_text("#alerts-h") == "Live alerts"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click("#lang")
    assert page.inner_text("h1") == "城市大脑"


def test_keyboard_reachable(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    seen = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement && (document.activeElement.id || document.activeElement.tagName)"))
    assert {"lang", "case-desc", "trend-sensor", "dir-text"} <= seen


def test_community_view_shows_only_its_area(demo_server: str, page) -> None:
    tree = httpx.get(demo_server + "/api/v1/places").json()
    communities: list[str] = []

    def walk(node: dict) -> None:
        if node["type"] == "Community":
            communities.append(node["id"])
        for child in node["children"]:
            walk(child)

    for root in tree:
        walk(root)
    mine = None
    for community in communities:
        sensors = httpx.get(demo_server + "/api/v1/map/sensors", params={"within": community}).json()["features"]
        if sensors:
            mine = community
            break
    assert mine is not None
    place = httpx.get(demo_server + f"/api/v1/places/{mine}").json()
    _ready(page, demo_server + f"/community/{mine}")
    cells = page.evaluate("window.citybrainMap.cellIds()")
    expected = {f["id"] for f in httpx.get(demo_server + "/api/v1/map/places",
                                           params={"level": "Grid", "within": mine}).json()["features"]}
    assert set(cells) == expected and len(cells) == place["cells"]
    all_sensors = {f["id"]: f["properties"]["place"] for f in
                   httpx.get(demo_server + "/api/v1/map/sensors").json()["features"]}
    shown = page.evaluate("window.citybrainMap.sensorIds()")
    assert shown and all(all_sensors[s] in expected for s in shown)
    assert len(shown) < len(all_sensors)
    for li in page.locator("#alert-feed li").all():
        assert "urn:ngsi-ld:Grid:" not in li.inner_text() or any(c in li.inner_text() for c in expected)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "community-view.png"))


def test_case_opened_from_the_ui_reaches_the_api_and_its_page(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    text = f"Broken street light outside the school gate {time.time_ns()}"
    page.fill("#case-desc", text)
    page.press("#case-desc", "Enter")
    page.wait_for_function("document.getElementById('case-form').dataset.lastCase", timeout=5000)
    case_id = page.evaluate("document.getElementById('case-form').dataset.lastCase")
    case = httpx.get(demo_server + f"/api/v1/cases/{case_id}").json()
    assert case["description"] == text and case["channel"] == "dashboard"
    listed = httpx.get(demo_server + "/api/v1/cases", params={"limit": 1000}).json()
    assert case_id in {c["id"] for c in listed}
    filed = httpx.post(demo_server + f"/api/v1/cases/{case_id}/file", json={"note": "seen on site"},
                       headers={"X-Citybrain-Actor": "supervisor:li"})
    assert filed.status_code in (200, 201), filed.text
    case = httpx.get(demo_server + f"/api/v1/cases/{case_id}").json()
    page.goto(demo_server + f"/case/{case_id}")
    page.wait_for_selector("body[data-ready='1']", timeout=10000)
    assert page.locator("#timeline li").count() == len(case["timeline"]) >= 1
    assert case["state"] in page.inner_text("#case-state")
    assert page.locator("#tasks .tile").count() == len(case["tasks"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "case-page.png"))


def test_login_with_an_api_key(secured_server, page) -> None:
    base, store = secured_server
    assert httpx.get(base + "/api/v1/places").status_code == 401  # deny by default
    key_file = Path(str(store) + ".admin-key")
    for _ in range(50):
        if key_file.exists():
            break
        time.sleep(0.2)
    key = key_file.read_text().strip().split()[-1]
    page.goto(base + "/")
    page.wait_for_url("**/login**")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    assert page.url.rstrip("/") == base
    assert page.evaluate("window.citybrainMap.cellIds().length") > 0
    page.goto(base + "/login")
    page.fill("#api_key", "cb_wrong.key")
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
