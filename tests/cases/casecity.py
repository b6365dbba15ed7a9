"""A small test city for the case tests: 1 city, 2 districts, 4 communities, 16 grid cells (4 x 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from services import pg_schema_url

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain
from citybrain.testing import START as START  # re-exported: the case tests start the clock there
from citybrain.testing import TestCity, build, running

TOWN = TestCity(city="urn:ngsi-ld:City:tc")  # 4 x 4 cells g{i}{j}, 2 x 2 per community m1..m4, districts d1, d2
CITY = TOWN.city
API_KEY = "test-key"
EXTRA_RULES = """
  - {categories: [E0406], place: "urn:ngsi-ld:District:d2", lead: urban, assist: [police]}
"""
COMPONENTS = ["citybrain.model.commands", "citybrain.cases"]
EXTENSIONS = ["citybrain.cases.api", "citybrain.open311"]  # only what this city runs
box, cell, community, centre = TOWN.box, TOWN.cell, TOWN.community, TOWN.centre


async def build_city(rt: CityBrain) -> None:
    """Write the places of the test city."""
    await build(rt, TOWN)


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
    config = settings(tmp_path, checker)
    async with running(TOWN, directory=tmp_path, store=config.store, components=COMPONENTS, extensions=EXTENSIONS,
                       extra=config.extra) as (rt, client, clock):
        yield rt, client, clock


def actor(name: str) -> dict[str, str]:
    """Return the header that names the acting person."""
    return {"x-citybrain-actor": name}
