"""Fixtures of the NGSI-LD conformance tests: a runtime on a temporary SQLite store, an in-memory client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[CityBrain]:
    rt = CityBrain(Settings(store=str(tmp_path / "ngsi.db"), bus="memory", max_body_bytes=200_000))
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def client(runtime: CityBrain) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c
