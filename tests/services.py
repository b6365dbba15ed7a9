"""Helpers for tests that need an external service (PostgreSQL, NATS, MQTT …)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("CITYBRAIN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def in_ci() -> bool:
    """Return True when running in CI (CI=true), where missing services are failures."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_service(name: str, host: str, port: int, timeout: float = 1.0) -> None:
    """Fail (CI=true) or skip (otherwise) the calling test unless host:port accepts TCP connections."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason}; start it, or set CI=true to turn this skip into a failure")


def require_executable(name: str, path: str | None = None) -> str:
    """Return the path of an executable; fail (CI=true) or skip (otherwise) when it is missing."""
    import shutil

    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it (make test installs it)", pytrace=False)
    pytest.skip(f"{reason}; install it (apt-get install -y {name}) or set CI=true to make this a failure")
    raise AssertionError("unreachable")


def with_search_path(url: str, schema: str) -> str:
    """Return `url` with its connections' search_path set to `schema`."""
    from urllib.parse import quote

    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


def pg_schema_url() -> Iterator[str]:
    """Yield a PostgreSQL URL whose connections use a fresh, empty schema, dropped afterwards (use it in a
    fixture); fail (CI=true) or skip when PostgreSQL is not running."""
    import uuid
    from urllib.parse import urlsplit

    import psycopg

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
