"""The store contract, continued: events, documents, dead letters, group commit, durability, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from citybrain.context import Context
from citybrain.errors import AlreadyExists, Conflict
from citybrain.events import Event
from citybrain.model.entity import Entity, ObservationRow
from citybrain.store import (
    AddDeadLetter,
    AppendEvent,
    DeleteDoc,
    EntityQuery,
    MarkReplayed,
    Op,
    PutDoc,
    Store,
    UpsertEntity,
    WriteObservations,
)

T0 = "2024-05-01T00:00:00Z"


def ts(i: int) -> str:
    """A canonical UTC timestamp i seconds after 2024-05-01T10:00:00Z."""
    return f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z"


def ev(etype: str, n: int = 0) -> Event:
    """An event of type `etype`."""
    return Event(type=etype, time=ts(n), context=Context(actor="tester"), data={"n": n})


async def test_events_append_and_read(store: Store) -> None:
    """Events append once per id and read back by seq, after and exact type prefix."""
    events = [
        ev("command.case.open", 1),
        ev("alert.raised", 2),
        ev("command.case.close", 3),
        ev("commandXcase", 4),
        ev("alert_raised", 5),
    ]
    await store.apply([AppendEvent(e) for e in events])
    await store.apply([AppendEvent(events[0])])  # the same event again is ignored
    got = await store.events()
    assert [e.type for e in got] == [e.type for e in events]
    assert [e.id for e in got] == [e.id for e in events]
    assert got[0].context == events[0].context and got[0].data == {"n": 1}
    seqs = [e.seq for e in got]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(s or 0 for s in seqs)
    assert [e.data["n"] for e in await store.events(type_prefix="command.")] == [1, 3]
    assert [e.data["n"] for e in await store.events(type_prefix="alert_")] == [5]  # _ is no wildcard
    assert [e.data["n"] for e in await store.events(type_prefix="ALERT")] == []  # prefixes are case-sensitive
    assert [e.data["n"] for e in await store.events(after=got[1].seq or 0)] == [3, 4, 5]
    assert [
        e.data["n"] for e in await store.events(after=got[0].seq or 0, type_prefix="command", limit=1)
    ] == [3]


async def test_docs_versions_and_where(store: Store) -> None:
    """Documents version on every put; expect_version guards; list_docs filters by field equality."""
    await store.apply(
        [PutDoc("cases", "c1", {"status": "open", "level": 2, "urgent": True}, expect_version=0)]
    )
    with pytest.raises(AlreadyExists):
        await store.apply([PutDoc("cases", "c1", {"status": "dup"}, expect_version=0)])
    doc = await store.get_doc("cases", "c1")
    assert (
        doc is not None and doc.version == 1 and doc.data["status"] == "open" and doc.updated_at.endswith("Z")
    )
    await store.apply(
        [PutDoc("cases", "c1", {"status": "closed", "level": 2, "urgent": False}, expect_version=1)]
    )
    with pytest.raises(Conflict):
        await store.apply([PutDoc("cases", "c1", {"status": "stale"}, expect_version=1)])
    with pytest.raises(Conflict):
        await store.apply([PutDoc("cases", "c9", {"status": "new"}, expect_version=3)])
    await store.apply(
        [PutDoc("cases", "c1", {"status": "closed", "level": 2, "urgent": False})]
    )  # unconditional
    doc = await store.get_doc("cases", "c1")
    assert doc is not None and doc.version == 3
    await store.apply(
        [
            PutDoc("cases", "c2", {"status": "open", "level": 1, "urgent": True, "owner": "ann"}),
            PutDoc("cases", "c3", {"status": "open", "level": 2, "urgent": False, "owner": None}),
            PutDoc("plans", "p1", {"status": "open"}),
        ]
    )

    async def ids(where: dict[str, object] | None = None, **kw: int) -> list[str]:
        return [d.id for d in await store.list_docs("cases", where, **kw)]

    assert await ids() == ["c1", "c2", "c3"]
    assert await ids({"status": "open"}) == ["c2", "c3"]
    assert await ids({"status": "open", "level": 2}) == ["c3"]
    assert await ids({"urgent": True}) == ["c2"]
    assert await ids({"owner": None}) == ["c1", "c3"]  # missing or null
    assert await ids({"status": "nope"}) == []
    assert await ids(limit=1, offset=1) == ["c2"]
    with pytest.raises(ValueError):
        await store.list_docs("cases", {"bad key": 1})
    assert await store.count_docs("cases", "status") == {"closed": 1, "open": 2}
    assert await store.count_docs("cases", "owner") == {"None": 2, "ann": 1}
    assert await store.count_docs("nothing", "status") == {}
    with pytest.raises(ValueError):
        await store.count_docs("cases", "bad key")
    await store.apply([DeleteDoc("cases", "c1"), DeleteDoc("cases", "missing")])
    assert await store.get_doc("cases", "c1") is None
    await store.apply(
        [PutDoc("cases", "c1", {"status": "again"}, expect_version=0)]
    )  # deleted: may be created


async def test_deadletters_and_replay(store: Store) -> None:
    """Dead letters list oldest first and can be marked replayed."""
    await store.apply([AddDeadLetter("mqtt", f"bad {i}", f'{{"i": {i}}}', ts(i)) for i in range(3)])
    letters = await store.deadletters()
    assert [d.reason for d in letters] == ["bad 0", "bad 1", "bad 2"] and not any(d.replayed for d in letters)
    assert letters[0].source == "mqtt" and letters[0].payload == '{"i": 0}' and letters[0].time == ts(0)
    await store.mark_replayed([letters[0].seq, letters[2].seq])
    assert [d.reason for d in await store.deadletters()] == ["bad 1"]
    every = await store.deadletters(include_replayed=True)
    assert [d.replayed for d in every] == [True, False, True]
    assert len(await store.deadletters(limit=2, include_replayed=True)) == 2
    await store.apply([MarkReplayed([letters[1].seq])])  # the same, as an operation of a command's commit
    assert await store.deadletters() == []


@pytest.mark.parametrize("bad", [[17], [0, 3, 9, 17, 30, 44, 49]], ids=["one", "many"])
async def test_failing_batch_fails_alone_among_concurrent_batches(store: Store, bad: list[int]) -> None:
    """In a group of 50 concurrent batches only the duplicate creates fail, entirely; the rest commit."""
    await store.apply([UpsertEntity(Entity(id="urn:dup", type="T", created_at=T0), mode="create")])
    commits = store.commits

    def batch(i: int) -> list[Op]:
        eid = "urn:dup" if i in bad else f"urn:c:{i:02d}"
        return [
            AppendEvent(ev("entity.created", i)),  # in the failing batch this must be rolled back too
            UpsertEntity(Entity(id=eid, type="T", created_at=T0), mode="create"),
            WriteObservations([ObservationRow(eid, "n", ts(i), i)]),
        ]

    results = await asyncio.gather(*(store.apply(batch(i)) for i in range(50)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if r is not None]
    assert failed == bad and all(isinstance(results[i], AlreadyExists) for i in bad)
    assert store.commits - commits < 50  # grouped
    good = 50 - len(bad)
    assert await store.count_entities(EntityQuery(types=["T"])) == good + 1
    assert len(await store.events(type_prefix="entity.created")) == good
    assert await store.history_count() == good
    dup = await store.get_entity("urn:dup")
    assert dup is not None and dup.attrs == {}


async def test_close_and_reopen_keeps_everything(make_store: Callable[[], Store]) -> None:
    """Everything acknowledged before close is there after reopening."""
    s = make_store()
    await s.open()
    await s.apply(
        [
            UpsertEntity(Entity(id="urn:a", type="T", created_at=T0), mode="create"),
            WriteObservations([ObservationRow("urn:a", "n", ts(i), i) for i in range(5)]),
            PutDoc("plans", "p", {"k": 1}),
            AppendEvent(ev("x.y")),
            AddDeadLetter("s", "r", "p", T0),
        ]
    )
    pending = [s.apply([WriteObservations([ObservationRow("urn:a", "m", ts(i), i)])]) for i in range(20)]
    await asyncio.gather(*pending)
    await s.close()
    s = make_store()
    await s.open()
    try:
        a = await s.get_entity("urn:a")
        assert a is not None and a.value("n") == 4 and a.value("m") == 19
        assert await s.history_count("urn:a") == 25
        doc = await s.get_doc("plans", "p")
        assert doc is not None and doc.data == {"k": 1}
        assert [e.type for e in await s.events()] == ["x.y"]
        assert len(await s.deadletters()) == 1
    finally:
        await s.close()


async def test_concurrent_reads_during_writes(store: Store) -> None:
    """Readers run while writers commit, and never see committed rows disappear."""
    await store.apply(
        [UpsertEntity(Entity(id=f"urn:r:{i}", type="R", created_at=T0), mode="create") for i in range(20)]
    )
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for k in range(15):
            rows = [ObservationRow(f"urn:r:{i}", "v", ts(k * 4 + w), k) for i in range(20)]
            await store.apply([WriteObservations(rows)])

    async def reader() -> int:
        reads, last = 0, 0
        while not done.is_set():
            count = await store.history_count()
            assert count >= last  # committed writes never disappear
            last = count
            assert len(await store.query_entities(EntityQuery(types=["R"]))) == 20
            reads += 1
            await asyncio.sleep(0)
        return reads

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    await asyncio.gather(*(writer(w) for w in range(4)))
    done.set()
    assert all(n > 0 for n in await asyncio.gather(*readers))
    assert await store.history_count() == 4 * 15 * 20
    e = await store.get_entity("urn:r:0")
    assert e is not None and e.attrs["v"]["observedAt"] == ts(14 * 4 + 3)


@pytest.mark.parametrize("n", [1, 2])
async def test_batch_is_atomic(store: Store, n: int) -> None:
    """A failing op rolls back the earlier ops of its batch, whether it commits alone or in a group."""
    await store.apply([PutDoc("d", "x", {}, expect_version=0)])
    bad: list[Op] = [PutDoc("d", "y", {"a": 1}), AppendEvent(ev("t")), PutDoc("d", "x", {}, expect_version=0)]
    good: list[Op] = [PutDoc("d", "z", {})]
    results = await asyncio.gather(
        store.apply(bad), *(store.apply(good) for _ in range(n - 1)), return_exceptions=True
    )
    assert isinstance(results[0], AlreadyExists) and all(r is None for r in results[1:])
    assert await store.get_doc("d", "y") is None and await store.events() == []
