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
    # the KPI tile follows the new alert too (refreshed on the stream's event, not on a timer)
    open_alerts = len(httpx.get(demo_server + "/api/v1/alerts", params={"status": "open"}).json())
    page.wait_for_function(f"document.getElementById('k-alerts').textContent === '{open_alerts}'", timeout=3000)
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
    # prefer a community with something going on (open alerts or cases), so the isolation is tested on live data
    busy = {a.get("community") for a in httpx.get(demo_server + "/api/v1/alerts", params={"status": "open"}).json()}
    busy |= {f["properties"].get("community") for f in httpx.get(demo_server + "/api/v1/map/cases").json()["features"]}
    mine = None
    for community in sorted(communities, key=lambda c: c not in busy):
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
    _downpour(demo_server, _weather_station(demo_server)["id"])  # an open alert to work from
    _ready(page, demo_server + "/")
    # the operator clicks the alert: the map flies to its cell and picks it; the new case is filed there
    page.wait_for_selector("#alert-feed li[data-place^='urn:ngsi-ld:Grid:']", timeout=5000)
    item = page.locator("#alert-feed li[data-place^='urn:ngsi-ld:Grid:']").first
    cell = item.get_attribute("data-place")
    item.click()
    page.wait_for_function(f"window.citybrainMap.highlighted() === {cell!r}", timeout=5000)
    text = f"Broken street light outside the school gate {time.time_ns()}"
    page.fill("#case-desc", text)
    page.press("#case-desc", "Enter")
    page.wait_for_function("document.getElementById('case-form').dataset.lastCase", timeout=5000)
    case_id = page.evaluate("document.getElementById('case-form').dataset.lastCase")
    case = httpx.get(demo_server + f"/api/v1/cases/{case_id}").json()
    assert case["description"] == text and case["channel"] == "dashboard" and case["place"] == cell
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


def test_login_cookie_is_httponly_and_next_stays_on_the_site(secured_server, page) -> None:
    """Issue #20: the server sets the token cookie (HttpOnly, SameSite=Lax); `next` cannot send the browser
    to another host."""
    base, store = secured_server
    key_file = Path(str(store) + ".admin-key")
    for _ in range(50):
        if key_file.exists():
            break
        time.sleep(0.2)
    key = key_file.read_text().strip().split()[-1]
    page.context.clear_cookies()
    page.goto(base + "/login?next=//evil.example/steal")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    assert page.url.rstrip("/") == base
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "citybrain_token"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert "citybrain_token" not in page.evaluate("document.cookie")  # scripts cannot read it


def _until(check, timeout: float = 15.0, every: float = 0.5):
    """Call `check` until it returns a truthy value (page and API can be a refresh apart); return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


def test_case_board_columns_and_overdue_match_the_api(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    page.wait_for_selector("#case-board .col[data-state='intake']", timeout=10000)
    states = ["intake", "filed", "dispatched", "handling", "feedback", "verified", "closed", "evaluated", "suspended"]

    def compare() -> tuple[dict, dict, set, set] | None:
        api_counts = {s: int(httpx.get(demo_server + "/api/v1/cases", params={"state": s, "limit": 1}).headers["X-Total-Count"])
                      for s in states}
        api_overdue = {c["id"] for c in httpx.get(demo_server + "/api/v1/cases", params={"overdue": "true", "limit": 1000}).json()}
        shown_counts = {s: int(page.get_attribute(f"#case-board .col[data-state='{s}']", "data-count")) for s in states}
        shown_overdue = set(page.eval_on_selector_all("#case-board a.card.overdue", "els => els.map(e => e.dataset.caseId)"))
        return (api_counts, shown_counts, api_overdue, shown_overdue)

    got = _until(lambda: (lambda r: r if r[0] == r[1] and r[2] == r[3] else None)(compare()))
    api_counts, shown_counts, api_overdue, shown_overdue = got or compare()
    assert shown_counts == api_counts
    assert shown_overdue == api_overdue and api_overdue, "the populated city has an overdue case"
    assert sum(1 for s in states if api_counts[s]) >= 4  # intake, dispatched, handling, closed at least
    # the overdue count of each column and the KPI tile agree with the API
    for s in states:
        col_overdue = int(page.get_attribute(f"#case-board .col[data-state='{s}']", "data-overdue"))
        assert col_overdue == sum(1 for c in httpx.get(demo_server + "/api/v1/cases",
                                                       params={"state": s, "overdue": "true"}).json())
    summary = httpx.get(demo_server + "/api/v1/dashboard/summary").json()
    assert page.inner_text("#k-overdue") == str(summary["cases"]["overdue"])
    # a card is a link to its case page, and the board is one tab stop with arrow keys inside
    first = page.locator("#case-board a.card.overdue").first
    assert first.get_attribute("href") == "/case/" + first.get_attribute("data-case-id")
    assert page.locator("#case-board a.card[tabindex='0']").count() == 1


def test_kpi_tiles_show_the_api_figures(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    s = httpx.get(demo_server + "/api/v1/dashboard/summary").json()
    cases = s["cases"]
    assert cases["on_time_rate"] is not None and cases["mean_response_minutes"] is not None  # populated city
    page.wait_for_function("document.getElementById('k-ontime').textContent !== '–'", timeout=5000)
    rate = round(cases["on_time_rate"] * 100, 1)
    assert page.inner_text("#k-ontime") == f"{rate:g}%"
    assert page.inner_text("#k-response").endswith("分钟") or page.inner_text("#k-response").endswith("小时")
    assert page.inner_text("#k-alerts") == str(s["alerts"]["open"])
    assert page.inner_text("#k-cases") == str(cases["open"])
    assert page.inner_text("#k-obs") != "–" and page.inner_text("#k-score") != "–"
    page.click("#lang")
    assert page.inner_text("#k-response").endswith(("min", " h"))
    assert page.inner_text("#kpi-h") == "Key indicators" and "On-time rate" in page.inner_text(".kpis")


def test_checkpoint_panel_shows_the_api_tree_size(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    page.wait_for_selector("#ledger[data-size]", timeout=10000)

    def same() -> tuple[str, str] | None:
        note = httpx.get(demo_server + "/api/v1/ledger/checkpoint").text
        shown = page.get_attribute("#ledger", "data-size")
        return (note, shown) if shown == note.split("\n")[1] else None

    got = _until(same, timeout=25)
    assert got, "the panel should catch up with the API's latest checkpoint"
    note, size = got
    lines = note.split("\n")
    assert page.inner_text("#ledger-size").replace(",", "") == size
    root = page.inner_text("#ledger-root")
    assert root.startswith(lines[2][:10]) and root.endswith(lines[2][-6:]) and len(root) < len(lines[2])
    assert "已验证" in page.inner_text("#ledger-badge")
    assert not page.is_visible("#ledger-note")  # the raw note only on demand
    page.click("#ledger-raw summary")
    assert page.inner_text("#ledger-note").strip() == note.strip()


def test_trend_renders_for_the_preselected_sensor_and_a_place(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    page.wait_for_selector("#trend-chart[data-rendered='1']", timeout=10000)
    trend = page.evaluate("window.citybrainTrend()")
    assert trend["by"] == "sensor" and trend["id"] in page.evaluate("window.citybrainMap.sensorIds()")
    rows = httpx.get(demo_server + f"/api/v1/entities/{trend['id']}/history",
                     params={"attr": trend["attr"], "lastN": 240}).json()
    numeric = [r for r in rows if isinstance(r["value"], (int, float))]
    assert trend["points"] == len(numeric) > 0  # the chart shows the sensor's history without any click
    assert page.locator("#trend-chart canvas").count() >= 1
    assert page.inner_text("#trend-latest") != "暂无数据"
    page.check("#trend-by-place")
    place = page.eval_on_selector("#trend-place", "el => el.value")
    page.wait_for_function(f"window.citybrainTrend().by === 'place' && window.citybrainTrend().id === {place!r}", timeout=5000)
    trend = page.evaluate("window.citybrainTrend()")
    series = httpx.get(demo_server + "/api/v1/dashboard/trend", params={"place": place, "attr": trend["attr"]}).json()["series"]
    assert trend["points"] == len(series) > 0


def test_map_fits_the_city_and_toggles_cases_and_resources(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    page.wait_for_function("document.getElementById('map').dataset.resources !== undefined "
                           "&& document.getElementById('map').dataset.cases !== undefined", timeout=10000)
    cells = httpx.get(demo_server + "/api/v1/map/places", params={"level": "Grid"}).json()["features"]
    xs = [x for f in cells for x, _ in f["geometry"]["coordinates"][0]]
    ys = [y for f in cells for _, y in f["geometry"]["coordinates"][0]]
    w, s, e, n = (float(v) for v in page.evaluate("window.citybrainMap.bounds()").split(","))
    assert w <= min(xs) and s <= min(ys) and e >= max(xs) and n >= max(ys)  # every cell in view
    assert (n - s) < 1.4 * (max(ys) - min(ys)) or (e - w) < 1.4 * (max(xs) - min(xs))  # and the city fills the map
    open_cases = {f["id"] for f in httpx.get(demo_server + "/api/v1/map/cases").json()["features"]}
    listed = httpx.get(demo_server + "/api/v1/cases", params={"limit": 1000}).json()
    assert open_cases and open_cases <= {c["id"] for c in listed if c["state"] not in ("closed", "evaluated", "cancelled", "merged")}
    assert set(page.evaluate("window.citybrainMap.caseIds()")) == open_cases
    resources = {r["id"] for r in httpx.get(demo_server + "/api/v1/resources").json()}
    assert set(page.evaluate("window.citybrainMap.resourceIds()")) == resources and resources
    for box, layer in (("#lyr-resources", "resources"), ("#lyr-cases", "cases"), ("#lyr-sensors", "sensors")):
        assert page.evaluate(f"window.citybrainMap.visible({layer!r})")
        page.uncheck(box)
        assert not page.evaluate(f"window.citybrainMap.visible({layer!r})")
        page.check(box)
        assert page.evaluate(f"window.citybrainMap.visible({layer!r})")


def test_laptop_screen_fits_without_scrolling(demo_server: str, browser) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        pg = context.new_page()
        _ready(pg, demo_server + "/")
        pg.wait_for_selector("#trend-chart[data-rendered='1']", timeout=10000)
        size = pg.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        assert size[0] <= 1366 and size[1] <= 768
        for sel in ("#map", "#alert-feed", "#case-board", "#trend-chart", "#ledger", ".kpis"):
            box = pg.locator(sel).bounding_box()
            assert box and box["width"] > 100 and box["height"] > 40 and box["y"] + box["height"] <= 768, sel
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / "city-view-laptop.png"))
    finally:
        context.close()


def test_area_modes_show_as_banner_and_chips(demo_server: str, page) -> None:
    _ready(page, demo_server + "/")
    district = sorted(f["id"] for f in httpx.get(demo_server + "/api/v1/map/places", params={"level": "District"}).json()["features"])[0]
    r = httpx.post(demo_server + "/api/v1/modes", json={"area": district, "mode": "watch", "reason": "test watch"})
    assert r.status_code == 201, r.text
    try:
        # the chip arrives over the event stream, without a reload
        page.wait_for_selector("#area-modes .chip.mode-watch", timeout=3000)
        assert "关注" in page.inner_text("#area-modes")
        assert "常态" in page.inner_text("#mode-banner")  # the city itself stays normal
        community = next(f["id"] for f in httpx.get(demo_server + "/api/v1/map/places",
                                                     params={"level": "Community", "within": district}).json()["features"])
        assert httpx.get(demo_server + f"/api/v1/modes/{community}").json()["mode"] == "watch"
        _ready(page, demo_server + f"/community/{community}")
        page.wait_for_function("document.getElementById('mode-banner').className.includes('mode-watch')", timeout=5000)
        assert "关注" in page.inner_text("#mode-banner")
    finally:
        httpx.post(demo_server + "/api/v1/modes/revert", json={"area": district, "reason": "test over"})
