"""Several writers on one database: no acknowledged write lost, no deadlock reaching a caller, events in commit
order. On SQLite the writers are stores on one file; on PostgreSQL, stores on one schema (each its own writer
connection, as the processes of one node have)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from citybrain.context import Context
from citybrain.errors import CityBrainError
from citybrain.events import Event
from citybrain.model.entity import Entity
from citybrain.store import AppendEvent, Op, SetAttrs, Store, UpsertEntity, open_store

WRITERS = 4
T0 = "2024-01-01T00:00:00.000Z"


@pytest.fixture
async def stores(make_store: Callable[[], Store]) -> AsyncIterator[list[Store]]:
    """WRITERS open stores on one database, closed afterwards."""
    opened = [make_store() for _ in range(WRITERS)]
    for s in opened:
        await s.open()
    try:
        yield opened
    finally:
        await asyncio.gather(*(s.close() for s in opened))


async def entities(store: Store, count: int, **attrs: Any) -> list[str]:
    """Create `count` entities (with the given attributes) and return their ids."""
    ids = [f"urn:ngsi-ld:Thing:{i:03d}" for i in range(count)]
    await store.apply([UpsertEntity(Entity(id=i, type="Thing", attrs=dict(attrs), created_at=T0), mode="create")
                       for i in ids])
    return ids


def prop(value: Any) -> dict[str, Any]:
    """An NGSI-LD Property without observedAt."""
    return {"type": "Property", "value": value}


async def test_every_update_of_one_attribute_is_in_history(stores: list[Store]) -> None:
    """400 concurrent updates of one attribute in one millisecond, spread over the writers: 400 history rows."""
    [eid] = await entities(stores[0], 1, speed=prop(-1))
    n = 400

    async def update(i: int) -> None:
        await stores[i % WRITERS].apply([SetAttrs(eid, {"speed": prop(i)}, "2024-01-01T00:00:01.000Z")])

    await asyncio.gather(*(update(i) for i in range(n)))
    rows = await stores[1].history(eid, "speed")
    assert sorted(r.value for r in rows if r.value >= 0) == list(range(n))
    assert sum(1 for r in rows if r.observed_at == "2024-01-01T00:00:01.000Z") == n


async def test_concurrent_patches_of_one_attribute_keep_every_key(stores: list[Store]) -> None:
    """Patches of different sub-attributes (and of the value) of one attribute, all at once: none is lost."""
    [eid] = await entities(stores[0], 1, speed=prop(0))
    n = 120

    async def patch(i: int) -> None:
        change = {"type": "Property", f"sub{i}": prop(i)} if i % 2 else {"type": "Property", "value": i}
        await stores[i % WRITERS].apply([SetAttrs(eid, {"speed": change}, T0, merge="patch_existing")])

    await asyncio.gather(*(patch(i) for i in range(n)))
    speed = (await stores[2].get_entity(eid) or Entity(id="", type="")).attrs["speed"]
    assert {k for k in speed if k.startswith("sub")} == {f"sub{i}" for i in range(1, n, 2)}
    assert speed["value"] in range(0, n, 2)
    assert len(await stores[3].history(eid, "speed")) == n + 1  # the creation, then every patch


async def test_writers_in_opposite_orders_never_fail(stores: list[Store]) -> None:
    """Two writers update overlapping entities, one in ascending, one in descending order: nothing fails."""
    ids = await entities(stores[0], 12, n=prop(0))
    a, b = stores[0], stores[1]
    rounds = 40

    async def hammer(store: Store, order: list[str], tag: str) -> None:
        async def one(r: int) -> None:
            ops: list[Op] = [SetAttrs(eid, {"n": prop(f"{tag}{r}")}, T0) for eid in order]
            await store.apply(ops)

        await asyncio.gather(*(one(r) for r in range(rounds)))  # concurrent: group commits of several batches

    results = await asyncio.gather(hammer(a, ids, "a"), hammer(b, ids[::-1], "b"),
                                   hammer(stores[2], ids[3:9], "c"), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert sum(getattr(s, "retries", 0) for s in stores) == 0  # one lock order: not even a deadlock to retry
    for eid in ids:
        expected = 1 + 2 * rounds + (rounds if eid in ids[3:9] else 0)
        assert await a.history_count(eid) == expected


def event(i: int, writer: int) -> Event:
    """A test event."""
    return Event(type="test.tick", data={"i": i, "writer": writer}, time=T0, context=Context(actor="test"))


async def test_tailer_sees_every_event_once_in_seq_order(stores: list[Store]) -> None:
    """A tailer reading events(after=last) while writers append sees every committed event once, in seq order."""
    per_writer = 150
    writers = stores[:3]
    ids = await entities(stores[0], 8 * len(writers), n=prop(0))
    done = asyncio.Event()

    async def write(k: int, store: Store) -> None:
        own = ids[8 * k:8 * k + 8]  # rows no other writer locks: nothing but the event order serialises them

        async def one(i: int) -> None:
            # the event first, the attribute writes after it: a seq handed out at insert would be taken long
            # before the commit, and another writer's later seq could commit first
            ops: list[Op] = [AppendEvent(event(i, k)), *(SetAttrs(eid, {"n": prop(i)}, T0) for eid in own)]
            await store.apply(ops)

        await asyncio.gather(*(one(i) for i in range(per_writer)))

    seen: list[Event] = []

    async def tail() -> None:
        last = 0
        while True:
            finished = done.is_set()  # read before the query: one more full pass after the writers are done
            page = await stores[3].events(after=last, limit=50)
            for ev in page:
                seen.append(ev)
                last = ev.seq or last
            if finished and not page:
                return
            if len(page) < 50:
                await asyncio.sleep(0.001)

    tailer = asyncio.create_task(tail())
    await asyncio.gather(*(write(k, s) for k, s in enumerate(writers)))
    done.set()
    await tailer
    stored = await stores[3].events(limit=10_000)
    assert len(stored) == len(writers) * per_writer
    assert [e.id for e in seen] == [e.id for e in stored]  # none skipped, none twice
    seqs = [e.seq or 0 for e in seen]
    assert seqs == sorted(set(seqs))


async def test_failed_batch_keeps_the_others_events(stores: list[Store]) -> None:
    """A batch that fails in a group takes its events with it; the other batches' events are stored, in order."""
    [eid] = await entities(stores[0], 1)
    good = [stores[0].apply([AppendEvent(event(i, 0)), SetAttrs(eid, {"n": prop(i)}, T0)]) for i in range(6)]
    bad = stores[0].apply([AppendEvent(event(99, 0)), SetAttrs("urn:ngsi-ld:Thing:missing", {"n": prop(1)}, T0)])
    results = await asyncio.gather(*good[:3], bad, *good[3:], return_exceptions=True)
    assert isinstance(results[3], CityBrainError)
    assert [e.data["i"] for e in await stores[1].events()] == [0, 1, 2, 3, 4, 5]


async def test_sqlite_stores_on_one_file_number_events_in_commit_order(tmp_path: Path) -> None:
    """SQLite: two stores on one file append events concurrently; seq order is commit order (one writer)."""
    path = str(tmp_path / "shared.db")
    a, b = open_store(path), open_store(path)
    await a.open()
    await b.open()
    try:
        await asyncio.gather(*(s.apply([AppendEvent(event(i, k))]) for i in range(50) for k, s in enumerate((a, b))))
        stored = await a.events(limit=1000)
        assert len(stored) == 100 and [e.seq for e in stored] == sorted({e.seq for e in stored})
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_a_deadlock_is_retried_inside_the_store(pg_url: str) -> None:
    """PostgreSQL: a transaction chosen as a deadlock victim runs again; the caller sees success, no 409."""
    import psycopg

    from citybrain.store.postgres import PostgresStore

    store = PostgresStore(pg_url)
    async with store:
        e0, e1 = await entities(store, 2, n=prop(0))
        async with await psycopg.AsyncConnection.connect(pg_url) as other:
            await other.execute("SELECT 1 FROM entities WHERE id=%s FOR UPDATE", (e1,))
            # the store locks e0, then waits for e1; it waits first, so its deadlock check runs first
            write = asyncio.create_task(store.apply([SetAttrs(e0, {"n": prop(1)}, T0), SetAttrs(e1, {"n": prop(1)}, T0)]))
            await asyncio.sleep(0.3)
            await other.execute("SELECT 1 FROM entities WHERE id=%s FOR UPDATE", (e0,))  # closes the cycle
            await other.commit()
        await asyncio.wait_for(write, 10)
        assert store.retries >= 1
        assert [await store.history_count(e) for e in (e0, e1)] == [2, 2]


@pytest.mark.postgres
async def test_unstorable_text_fails_its_batch_alone(pg_url: str) -> None:
    """PostgreSQL: a NUL in an event or an entity id fails that batch; the rest of the group commits."""
    from citybrain.store.postgres import PostgresStore

    store = PostgresStore(pg_url)
    async with store:
        [eid] = await entities(store, 1)
        nul_event = Event(type="test.tick", data={"text": "a\x00b"}, time=T0, context=Context())
        results = await asyncio.gather(
            store.apply([AppendEvent(event(0, 0)), SetAttrs(eid, {"n": prop(0)}, T0)]),
            store.apply([AppendEvent(nul_event), SetAttrs(eid, {"n": prop(1)}, T0)]),
            store.apply([SetAttrs("urn:ngsi-ld:Thing:\x00", {"n": prop(2)}, T0)]),
            store.apply([AppendEvent(event(3, 0)), SetAttrs(eid, {"n": prop(3)}, T0)]),
            return_exceptions=True,
        )
        assert results[0] is None and results[3] is None
        assert isinstance(results[1], CityBrainError) and isinstance(results[2], Exception)
        assert [e.data["i"] for e in await store.events()] == [0, 3]
        assert [r.value for r in await store.history(eid, "n")] == [0, 3]
        # the six characters \u0000 are text, not a NUL: stored
        await store.apply([AppendEvent(Event(type="test.tick", data={"t": "\\u0000"}, time=T0, context=Context()))])
        assert (await store.events(after=0, type_prefix="test"))[-1].data == {"t": "\\u0000"}
