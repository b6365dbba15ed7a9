"""Finding 4 of issue #20: the SQLite store files (main and tenant stores, with their WAL and SHM) are 0600,
like the secret files beside them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain
from citybrain.store.sqlite import SqliteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask: new files would be world-readable
    yield
    os.umask(old)


def modes(db: Path) -> dict[str, int]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out[p.name] = stat.S_IMODE(p.stat().st_mode)
    return out


async def test_main_and_tenant_store_files_are_private(tmp_path: Path, open_umask: None) -> None:
    rt = CityBrain(Settings(store=str(tmp_path / "node.db"), auth="on", node_id="city"))
    await rt.start()
    try:
        app = create_app(rt, manage_runtime=False)
        key = (tmp_path / "node.db.admin-key").read_text().strip()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            r = await c.post("/ngsi-ld/v1/entities", headers={"X-API-Key": key, "NGSILD-Tenant": "t1"},
                             json={"id": "urn:ngsi-ld:Thing:x", "type": "Thing",
                                   "v": {"type": "Property", "value": 1}})
            assert r.status_code == 201, r.text
        main, tenant = modes(tmp_path / "node.db"), modes(tmp_path / "node.t1.db")
        assert {"node.db", "node.db-wal", "node.db-shm"} <= set(main)
        assert {"node.t1.db", "node.t1.db-wal", "node.t1.db-shm"} <= set(tenant)
        assert set((main | tenant).values()) == {0o600}, main | tenant
    finally:
        await rt.stop()


async def test_an_existing_world_readable_store_is_tightened(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "old.db"
    store = SqliteStore(str(db))
    await store.open()
    await store.close()
    db.chmod(0o644)
    store = SqliteStore(str(db))
    await store.open()
    try:
        assert set(modes(db).values()) == {0o600}, modes(db)
    finally:
        await store.close()
