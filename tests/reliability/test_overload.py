"""Overload: 2x capacity gets 200/429/503 answers (with Retry-After), no crash, recovery; admission unit tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain
from reliability.pressure import overload


@pytest.mark.slow
def test_twice_capacity_is_shed_cleanly_and_the_node_recovers() -> None:
    r = overload(factor=2.0, measure=2.5, seconds=3.0)
    statuses = r.details["statuses"]
    assert set(statuses) <= {"200", "429", "503"}, statuses
    assert r.recovery_s is not None, r.notes
    assert (r.lost, r.duplicates) == (0, 0), r
    assert r.ok, r.notes


async def _app(tmp_path: Path, **limits: float) -> tuple[CityBrain, httpx.AsyncClient]:
    rt = CityBrain(Settings(store=str(tmp_path / "a.db"), extra={"admission": limits}))
    app = create_app(rt)
    await rt.start()
    await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:RelSensor:x", "type": "RelSensor"}})
    return rt, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _obs(k: int) -> list[dict[str, object]]:
    return [{"entity": "urn:ngsi-ld:RelSensor:x", "attr": "t", "observedAt": f"2026-01-01T00:00:{k:02d}Z", "value": k}]


async def test_a_client_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    rt, client = await _app(tmp_path, client_rate=1, client_burst=2)
    try:
        codes = [(await client.post("/api/v1/observations", json=_obs(k))) for k in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 429, 429]
        assert codes[2].headers["retry-after"] == "1"
        assert codes[2].json()["title"] == "TooManyRequests"
        assert (await client.get("/api/v1/stats")).status_code == 200, "reads are not rate limited"
        assert 'citybrain_http_shed_total{reason="TooManyRequests"} 2.0' in (await client.get("/metrics")).text
    finally:
        await client.aclose()
        await rt.stop()


async def test_writes_beyond_the_inflight_bound_get_503_and_recover(tmp_path: Path) -> None:
    rt, client = await _app(tmp_path, max_inflight=2)
    try:
        answers = await asyncio.gather(*(client.post("/api/v1/observations", json=_obs(k)) for k in range(12)))
        codes = sorted(r.status_code for r in answers)
        assert 503 in codes and 200 in codes, codes
        shed = next(r for r in answers if r.status_code == 503)
        assert shed.headers["retry-after"] and shed.json()["title"] == "Overloaded"
        assert shed.headers["content-type"] == "application/problem+json"
        assert (await client.post("/api/v1/observations", json=_obs(59))).status_code == 200
    finally:
        await client.aclose()
        await rt.stop()
