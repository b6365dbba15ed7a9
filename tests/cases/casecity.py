"""A small test city for the case tests: 1 city, 2 districts, 4 communities, 16 grid cells (4 x 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from services import pg_schema_url

from citybrain.api import app as app_module
from citybrain.api import create_app
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain

CITY = "urn:ngsi-ld:City:tc"
LON0, LAT0, DLON, DLAT = 116.0, 39.8, 0.1, 0.05  # cell (i, j): lon LON0 + i*DLON, lat LAT0 + j*DLAT
START = "2026-03-02T01:00:00Z"  # a Monday, 09:00 in Beijing
API_KEY = "test-key"
EXTRA_RULES = """
  - {categories: [E0406], place: "urn:ngsi-ld:District:d2", lead: urban, assist: [police]}
"""


def box(i: int, j: int) -> dict[str, Any]:
    """Return the polygon of grid cell (i, j)."""
    x, y = LON0 + i * DLON, LAT0 + j * DLAT
    return {"type": "Polygon", "coordinates": [[[x, y], [x + DLON, y], [x + DLON, y + DLAT], [x, y + DLAT], [x, y]]]}


def cell(i: int, j: int) -> str:
    """Return the URN of grid cell (i, j)."""
    return f"urn:ngsi-ld:Grid:g{i}{j}"


def community(i: int, j: int) -> str:
    """Return the community a cell is in (2 x 2 cells each)."""
    return f"urn:ngsi-ld:Community:m{1 + i // 2 + 2 * (j // 2)}"


def centre(i: int, j: int) -> tuple[float, float]:
    """Return (lon, lat) of the middle of cell (i, j)."""
    return LON0 + (i + 0.5) * DLON, LAT0 + (j + 0.5) * DLAT


async def build_city(rt: CityBrain) -> None:
    """Write the places of the test city."""
    whole = {"type": "Polygon", "coordinates": [[[116.0, 39.8], [116.4, 39.8], [116.4, 40.0], [116.0, 40.0],
                                                 [116.0, 39.8]]]}

    async def put(pid: str, ptype: str, parent: str | None, geo: dict[str, Any]) -> None:
        await rt.execute("entity.write", {"entity": {"id": pid, "type": ptype, "place": parent, "location": geo}})

    await put(CITY, "City", None, whole)
    for d in (1, 2):
        await put(f"urn:ngsi-ld:District:d{d}", "District", CITY, whole)
        await put(f"urn:ngsi-ld:Subdistrict:s{d}", "Subdistrict", f"urn:ngsi-ld:District:d{d}", whole)
    for k in (1, 2, 3, 4):
        await put(f"urn:ngsi-ld:Community:m{k}", "Community", f"urn:ngsi-ld:Subdistrict:s{1 + (k - 1) // 2}", whole)
    for i in range(4):
        for j in range(4):
            await put(cell(i, j), "Grid", community(i, j), box(i, j))


STORE_URL: str | None = None  # set by `case_store` to run the city on PostgreSQL


@pytest.fixture(autouse=True, params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def case_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run each test on SQLite (the default above) and on a fresh PostgreSQL schema (tests/cases and
    tests/open311 import this fixture in their conftest)."""
    global STORE_URL
    if request.param == "sqlite":
        yield "sqlite"
        return
    for url in pg_schema_url():
        STORE_URL = url
        try:
            yield url
        finally:
            STORE_URL = None


def settings(tmp_path: Path, checker: bool = False) -> Settings:
    """Return settings with a routing file that adds one place-specific rule, and an Open311 key."""
    routing = tmp_path / "routing.yaml"
    shipped = (Path(__file__).parents[2] / "citybrain" / "cases" / "routing.yaml").read_text(encoding="utf-8")
    routing.write_text(shipped + EXTRA_RULES, encoding="utf-8")
    return Settings(store=STORE_URL or str(tmp_path / "cases.db"), bus="memory", extra={
        "cases": {"routing": str(routing), "checker": checker},
        "open311": {"jurisdiction_id": "tc.example", "api_keys": [API_KEY]}})


@asynccontextmanager
async def city(tmp_path: Path, checker: bool = False) -> AsyncIterator[tuple[CityBrain, httpx.AsyncClient, FakeClock]]:
    """Run the test city with its HTTP API; yield (runtime, client, clock)."""
    clock = FakeClock(START)
    rt = CityBrain(settings(tmp_path, checker), clock=clock, components=[
        "citybrain.model.commands", "citybrain.cases"])
    await rt.start()
    try:
        await build_city(rt)
        saved = app_module.EXTENSIONS[:]
        app_module.EXTENSIONS[:] = ["citybrain.cases.api", "citybrain.open311"]  # only what this city runs
        try:
            app = create_app(rt, manage_runtime=False)
        finally:
            app_module.EXTENSIONS[:] = saved
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield rt, client, clock
    finally:
        await rt.stop()


def actor(name: str) -> dict[str, str]:
    """Return the header that names the acting person."""
    return {"x-citybrain-actor": name}
