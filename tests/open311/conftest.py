"""Every Open311 test runs twice: on SQLite and on PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cases import casecity
from services import pg_schema_url


@pytest.fixture(autouse=True, params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def case_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Point the test city's store at SQLite (casecity's default) or at a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    for url in pg_schema_url():
        casecity.STORE_URL = url
        try:
            yield url
        finally:
            casecity.STORE_URL = None
