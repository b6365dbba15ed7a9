"""PostgreSQL only: lost connections, concurrent migrations, an unreachable server, row de-duplication."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from services import PG_URL

from citybrain.errors import Unavailable
from citybrain.model.entity import Entity, ObservationRow
from citybrain.store import DeleteEntity, EntityQuery, UpsertEntity, WriteObservations
from citybrain.store.postgres import PostgresStore, observation_rows

pytestmark = pytest.mark.postgres


def _terminate(pids: list[int]) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_writer_reconnects_after_its_connection_dies(pg_url: str) -> None:
    """A killed writer connection fails the batch that hit it (Unavailable); the next commit reconnects."""
    store = PostgresStore(pg_url)
    async with store:
        await store.apply([UpsertEntity(Entity(id="urn:a", type="T", created_at="t"), mode="create")])
        assert store._wconn is not None
        _terminate([store._wconn.info.backend_pid])
        await asyncio.sleep(0.1)
        with pytest.raises(Unavailable):  # the batch that hits the dead connection is not reported stored
            await store.apply([UpsertEntity(Entity(id="urn:b", type="T", created_at="t"), mode="create")])
        await store.apply([UpsertEntity(Entity(id="urn:c", type="T", created_at="t"), mode="create")])
        assert store.reconnects == 1
        assert [e.id for e in await store.query_entities(EntityQuery())] == ["urn:a", "urn:c"]


async def test_readers_recover_after_their_connections_die(pg_url: str) -> None:
    """Reads succeed again after every pooled reader connection was killed."""
    app = f"cbtest_{id(pg_url)}"
    store = PostgresStore(f"{pg_url}&application_name={app}", readers=2)
    async with store:
        await asyncio.gather(*(store.ping() for _ in range(4)))
        writer = store._wconn.info.backend_pid if store._wconn else 0
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> %s", (app, writer)
            ).fetchall()
        assert rows
        _terminate([r[0] for r in rows])
        await asyncio.sleep(0.1)
        for _ in range(3):
            assert await store.count_entities(EntityQuery()) == 0


async def test_concurrent_migrations_on_a_fresh_schema(pg_url: str) -> None:
    """Several stores migrating one fresh schema at once all succeed (advisory lock)."""
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].apply([UpsertEntity(Entity(id="urn:a", type="T", created_at="t"))])
        assert await stores[3].get_entity("urn:a") is not None
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_unreachable_server_is_unavailable() -> None:
    """A server that cannot be reached is Unavailable, for open, ping and apply."""
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", reconnect_attempts=1)
    with pytest.raises(Unavailable):
        await store.open()
    with pytest.raises(Unavailable):
        await store.ping()
    with pytest.raises(Unavailable):
        await store.apply([DeleteEntity("urn:x", missing_ok=True)])


def test_observation_rows_touch_each_key_once() -> None:
    """Observation rows are de-duplicated the way sequential INSERT OR REPLACE / upsert would resolve them."""
    rows = [
        ObservationRow("e", "a", "t2", 2, "C"),
        ObservationRow("e", "a", "t3", 3, None),  # newest: keeps the unit C it omits
        ObservationRow("e", "a", "t1", 1, "F"),  # older: history only
        ObservationRow("e", "a", "t2", 22, "K"),  # same history key: replaces
    ]
    hist, state = observation_rows(rows)
    assert hist == [("e", "a", "t2", "22", "K"), ("e", "a", "t3", "3", None), ("e", "a", "t1", "1", "F")]
    assert state == [("e", "a", "3", "t3", "C")]
    assert observation_rows([]) == ([], [])


async def test_many_observations_in_one_statement(pg_url: str) -> None:
    """Thousands of observations, many per key, go through one statement pair."""
    async with PostgresStore(pg_url) as store:
        rows = [
            ObservationRow(f"urn:s:{i % 100}", "v", f"2024-01-01T00:00:{i // 100:02d}Z", i)
            for i in range(5000)
        ]
        await store.apply([WriteObservations(rows)])
        assert await store.history_count() == 5000
        e = await store.get_entity("urn:s:7")
        assert e is None  # observations of an unknown entity are kept, but it has no identity row
        assert len(await store.history("urn:s:7")) == 50
