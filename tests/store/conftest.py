"""Store fixtures: every contract test runs on SQLite (a temp file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from services import pg_schema_url

from citybrain.store import Store, open_store


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema (dropped afterwards); skip/fail if no server."""
    yield from pg_schema_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store under test lives: a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "city.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_store(store_url: str) -> Callable[[], Store]:
    """Return a factory of (unopened) stores at the same location, to test reopening."""
    return lambda: open_store(store_url)


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    """An open store, closed after the test."""
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
