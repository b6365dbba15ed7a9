"""Store fixtures: every contract test runs on SQLite (a temp file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from services import PG_URL, require_service

from citybrain.store import Store, open_store


def with_search_path(url: str, schema: str) -> str:
    """Return `url` with its connections' search_path set to `schema`."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema (dropped afterwards); skip/fail if no server."""
    parts = urlsplit(PG_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(PG_URL, schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


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
