"""Finding 5 of issue #20: Prometheus can scrape /metrics: the admin, the `ops` role and a scrape token may read it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from trustcity import City

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain

SCRAPE = "scrape-9f2c1e0d7a6b5c4d3e2f1a0b"


async def test_metrics_readers(city: City) -> None:
    c = city.client
    for role in ("admin", "ops", "city_operator", "auditor"):
        r = await c.get("/metrics", headers=city.auth(role))
        assert r.status_code == 200 and "# HELP" in r.text, (role, r.status_code)
    for role in ("department_handler", "device", "external_user"):
        assert (await c.get("/metrics", headers=city.auth(role))).status_code == 403, role
    assert (await c.get("/metrics")).status_code == 401


async def test_ops_role_reads_operations_only(city: City) -> None:
    c, h = city.client, city.auth("ops")
    assert (await c.get("/-/settings", headers=h)).status_code == 200
    for path in ("/api/v1/users", "/api/v1/entities", "/api/v1/cases", "/ngsi-ld/v1/entities?type=X",
                 "/api/v1/events", "/api/v1/ledger/entries"):
        assert (await c.get(path, headers=h)).status_code == 403, path
    assert (await c.post("/-/settings", headers=h, json={})).status_code == 403


@pytest.fixture
async def scraped(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    rt = CityBrain(Settings(store=str(tmp_path / "m.db"), auth="on", node_id="city", metrics_token=SCRAPE))
    await rt.start()
    app = create_app(rt, manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
    await rt.stop()


async def test_scrape_token(scraped: httpx.AsyncClient) -> None:
    c = scraped
    r = await c.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
    assert r.status_code == 200 and "# HELP" in r.text
    assert (await c.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}x"})).status_code == 401
    assert (await c.get("/metrics")).status_code == 401
    # the scrape token opens /metrics and nothing else
    for path in ("/-/settings", "/api/v1/entities", "/api/v1/users"):
        assert (await c.get(path, headers={"Authorization": f"Bearer {SCRAPE}"})).status_code == 401, path
    settings = (await c.get("/-/settings", headers={"X-API-Key": _admin_key(c)})).json()
    assert settings["settings"]["metrics_token"] == "***"


def _admin_key(c: httpx.AsyncClient) -> str:
    rt = c._transport.app.state.rt  # type: ignore[attr-defined]
    return Path(rt.settings.store + ".admin-key").read_text().strip()
