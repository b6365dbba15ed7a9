"""The store contract: entities, attributes, observations, history and queries, on every adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from citybrain.errors import AlreadyExists, NotFound, Unavailable
from citybrain.model.entity import Entity, ObservationRow
from citybrain.store import (
    DeleteAttrs,
    DeleteEntity,
    EntityQuery,
    SetAttrs,
    Store,
    UpsertEntity,
    WriteObservations,
)

T0 = "2024-05-01T00:00:00Z"


def ts(i: int) -> str:
    """A canonical UTC timestamp i seconds after 2024-05-01T10:00:00Z."""
    return f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z"


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    """An NGSI-LD Property."""
    return {"type": "Property", "value": value, **extra}


def entity(eid: str, etype: str = "Sensor", **kw: Any) -> Entity:
    """An entity created at T0."""
    kw.setdefault("created_at", T0)
    kw.setdefault("modified_at", T0)
    return Entity(id=eid, type=etype, **kw)


def point(lon: float, lat: float) -> dict[str, Any]:
    """A GeoJSON point."""
    return {"type": "Point", "coordinates": [lon, lat]}


async def test_migrations_are_idempotent(make_store: Callable[[], Store]) -> None:
    """Opening twice and migrating again keeps the schema and the data."""
    first = make_store()
    await first.open()
    await first.apply([UpsertEntity(entity("urn:s:1"), mode="create")])
    await first.migrate()  # again, on an up-to-date schema
    await first.close()
    second = make_store()
    await second.open()
    try:
        assert (await second.get_entity("urn:s:1")) is not None
    finally:
        await second.close()


async def test_create_get_and_duplicate_create(store: Store) -> None:
    """A created entity reads back whole; creating it again is AlreadyExists."""
    e = entity(
        "urn:s:1",
        attrs={"temp": prop(21.5, unitCode="CEL"), "owner": {"type": "Relationship", "object": "urn:o"}},
        place="cell-1",
        location=point(8.5, 47.3),
        scope="/city",
    )
    await store.apply([UpsertEntity(e, mode="create")])
    got = await store.get_entity("urn:s:1")
    assert got is not None
    assert (got.type, got.place, got.scope, got.location) == ("Sensor", "cell-1", "/city", point(8.5, 47.3))
    assert got.attrs["temp"] == prop(21.5, unitCode="CEL")
    assert got.attrs["owner"] == {"type": "Relationship", "object": "urn:o"}
    assert got.value("owner") == "urn:o"
    with pytest.raises(AlreadyExists):
        await store.apply([UpsertEntity(entity("urn:s:1"), mode="create")])
    assert await store.get_entity("urn:nope") is None
    assert set(await store.get_entities(["urn:s:1", "urn:nope"])) == {"urn:s:1"}


async def test_upsert_update_replace_delete(store: Store) -> None:
    """upsert/update merge, replace swaps attributes, delete removes state but keeps history."""
    await store.apply([UpsertEntity(entity("urn:s:1", attrs={"a": prop(1), "b": prop(2)}), mode="upsert")])
    with pytest.raises(NotFound):
        await store.apply([UpsertEntity(entity("urn:s:2", attrs={"a": prop(1)}), mode="update")])
    assert await store.get_entity("urn:s:2") is None
    await store.apply(
        [
            UpsertEntity(
                entity("urn:s:1", attrs={"b": prop(20), "c": prop(3)}, modified_at=ts(1)), mode="update"
            )
        ]
    )
    got = await store.get_entity("urn:s:1")
    assert got is not None and {k: v["value"] for k, v in got.attrs.items()} == {"a": 1, "b": 20, "c": 3}
    assert got.modified_at == ts(1) and got.created_at == T0
    await store.apply([UpsertEntity(entity("urn:s:1", attrs={"d": prop(4)}, modified_at=""), mode="upsert")])
    got = await store.get_entity("urn:s:1")
    assert got is not None and set(got.attrs) == {"a", "b", "c", "d"} and got.modified_at == ts(1)
    await store.apply(
        [UpsertEntity(entity("urn:s:1", "Meter", attrs={"z": prop(9)}, modified_at=ts(2)), mode="replace")]
    )
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.type == "Meter" and set(got.attrs) == {"z"} and got.modified_at == ts(2)
    await store.apply(
        [UpsertEntity(entity("urn:s:3"), mode="replace")]
    )  # replace of a missing entity creates it
    assert await store.get_entity("urn:s:3") is not None
    await store.apply([DeleteEntity("urn:s:1")])
    assert await store.get_entity("urn:s:1") is None
    with pytest.raises(NotFound):
        await store.apply([DeleteEntity("urn:s:1")])
    await store.apply([DeleteEntity("urn:s:1", missing_ok=True)])
    assert await store.history_count("urn:s:1") > 0  # history outlives the entity
    await store.apply([UpsertEntity(entity("urn:s:1"), mode="create")])  # and its attributes are gone
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.attrs == {}


async def test_set_and_delete_attrs(store: Store) -> None:
    """SetAttrs merges and records history; DeleteAttrs is all-or-nothing; both need the entity."""
    with pytest.raises(NotFound):
        await store.apply([SetAttrs("urn:s:1", {"a": prop(1)}, modified_at=ts(1))])
    await store.apply([UpsertEntity(entity("urn:s:1", attrs={"a": prop(1)}), mode="create")])
    await store.apply(
        [
            SetAttrs(
                "urn:s:1",
                {"b": prop(2, observedAt=ts(5)), "location": {"type": "GeoProperty", "value": point(1, 2)}},
                modified_at=ts(6),
            )
        ]
    )
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.attrs["b"] == prop(2, observedAt=ts(5)) and got.modified_at == ts(6)
    assert [e.id for e in await store.query_entities(EntityQuery(bbox=(0, 1, 2, 3)))] == ["urn:s:1"]
    rows = await store.history("urn:s:1", attr="b")
    assert [(r.observed_at, r.value) for r in rows] == [(ts(5), 2)]
    # a missing attribute fails the whole batch: "a" is not removed either
    with pytest.raises(NotFound):
        await store.apply([DeleteAttrs("urn:s:1", ["a", "missing"], modified_at=ts(7))])
    got = await store.get_entity("urn:s:1")
    assert got is not None and "a" in got.attrs
    await store.apply([DeleteAttrs("urn:s:1", ["a", "location"], modified_at=ts(8))])
    got = await store.get_entity("urn:s:1")
    assert got is not None and set(got.attrs) == {"b"} and got.location is None
    assert await store.query_entities(EntityQuery(bbox=(0, 1, 2, 3))) == []
    with pytest.raises(NotFound):
        await store.apply([DeleteAttrs("urn:nope", ["b"], modified_at=ts(9))])


async def test_observations_latest_wins_and_history_keeps_all(store: Store) -> None:
    """State keeps the newest observedAt whatever the arrival order; history keeps every row, idempotently."""
    await store.apply([UpsertEntity(entity("urn:s:1"), mode="create")])
    order = [5, 2, 9, 1, 7]
    await store.apply(
        [WriteObservations([ObservationRow("urn:s:1", "speed", ts(i), i, "KMH") for i in order])]
    )
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.attrs["speed"] == prop(9, observedAt=ts(9), unitCode="KMH")
    # an older value arriving late changes history but not state; a unit left out is kept
    await store.apply([WriteObservations([ObservationRow("urn:s:1", "speed", ts(3), 3)])])
    await store.apply([WriteObservations([ObservationRow("urn:s:1", "speed", ts(8), 8)])])
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.attrs["speed"] == prop(9, observedAt=ts(9), unitCode="KMH")
    await store.apply(
        [
            WriteObservations(
                [
                    ObservationRow("urn:s:1", "speed", ts(12), {"avg": 12.5}),
                    ObservationRow("urn:s:1", "speed", ts(11), 11),
                ]
            )
        ]
    )
    got = await store.get_entity("urn:s:1")
    assert got is not None and got.attrs["speed"] == prop({"avg": 12.5}, observedAt=ts(12), unitCode="KMH")
    rows = await store.history("urn:s:1", "speed")
    assert [r.observed_at for r in rows] == [ts(i) for i in (1, 2, 3, 5, 7, 8, 9, 11, 12)]
    assert rows[0].unit == "KMH" and rows[2].unit is None and rows[-1].value == {"avg": 12.5}
    # re-ingesting the same rows is idempotent; a corrected value replaces the history row
    before = await store.history_count()
    await store.apply(
        [WriteObservations([ObservationRow("urn:s:1", "speed", ts(i), i, "KMH") for i in order])]
    )
    await store.apply([WriteObservations([ObservationRow("urn:s:1", "speed", ts(5), 55, "KMH")] * 3)])
    assert await store.history_count() == before
    assert [r.value for r in await store.history("urn:s:1", "speed", since=ts(5), until=ts(6))] == [55]


async def test_observations_with_duplicate_keys_in_one_batch(store: Store) -> None:
    """Rows repeating a key within one batch resolve as if applied one by one."""
    rows = [ObservationRow("urn:s:1", "n", ts(i % 4), i) for i in range(12)]  # each timestamp three times
    rows += [ObservationRow("urn:s:2", "n", ts(1), "x"), ObservationRow("urn:s:2", "n", ts(1), "y")]
    await store.apply(
        [
            UpsertEntity(entity("urn:s:1"), mode="create"),
            UpsertEntity(entity("urn:s:2"), mode="create"),
            WriteObservations(rows),
        ]
    )
    got = await store.get_entities(["urn:s:1", "urn:s:2"])
    assert got["urn:s:1"].attrs["n"]["value"] == 11  # ts(3): rows 3, 7, 11; the last one wins
    assert got["urn:s:2"].attrs["n"]["value"] == "y"
    assert [(r.observed_at, r.value) for r in await store.history("urn:s:1")] == [
        (ts(i), 8 + i) for i in range(4)
    ]


async def test_history_filters(store: Store) -> None:
    """history() filters by attribute, since/until (half-open), last_n and limit."""
    rows = [ObservationRow("urn:s:1", attr, ts(i), i) for i in range(10) for attr in ("a", "b")]
    rows.append(ObservationRow("urn:s:2", "a", ts(0), 0))
    await store.apply([WriteObservations(rows)])
    assert await store.history_count() == 21
    assert await store.history_count("urn:s:1") == 20
    assert len(await store.history("urn:s:1")) == 20
    a = await store.history("urn:s:1", "a")
    assert [r.value for r in a] == list(range(10)) and {r.attr for r in a} == {"a"}
    assert [r.value for r in await store.history("urn:s:1", "a", since=ts(3), until=ts(6))] == [3, 4, 5]
    assert [r.value for r in await store.history("urn:s:1", "a", last_n=3)] == [7, 8, 9]
    assert [(r.attr, r.value) for r in await store.history("urn:s:1", last_n=3)] == [
        ("b", 8),
        ("a", 9),
        ("b", 9),
    ]
    assert [r.value for r in await store.history("urn:s:1", "b", until=ts(2))] == [0, 1]
    assert len(await store.history("urn:s:1", limit=5)) == 5
    assert await store.history("urn:nope") == []


async def test_query_entities_filters_and_count(store: Store) -> None:
    """query_entities/count_entities filter by type, id, pattern, place and bbox, and page."""
    ops: list[Any] = []
    for i in range(12):
        etype = "Sensor" if i % 2 else "Camera"
        place = f"cell-{i % 3}"
        ops.append(
            UpsertEntity(
                entity(
                    f"urn:e:{i:02d}", etype, place=place, location=point(i, i + 100), attrs={"n": prop(i)}
                ),
                mode="create",
            )
        )
    ops.append(UpsertEntity(entity("urn:x:a_b", "Other"), mode="create"))
    await store.apply(ops)

    async def ids(**kw: Any) -> list[str]:
        return [e.id for e in await store.query_entities(EntityQuery(**kw))]

    assert len(await ids()) == 13
    assert await ids(types=["Other"]) == ["urn:x:a_b"]
    assert await ids(types=["Sensor"], places=["cell-1"]) == ["urn:e:01", "urn:e:07"]
    assert await ids(ids=["urn:e:03", "urn:e:04", "urn:nope"]) == ["urn:e:03", "urn:e:04"]
    assert await ids(ids=[]) == [] and await ids(types=[]) == []
    assert await ids(id_pattern=r"^urn:e:1\d$") == ["urn:e:10", "urn:e:11"]
    assert await ids(id_pattern=r"a_b") == ["urn:x:a_b"]
    assert await ids(bbox=(2.5, 100, 5, 106)) == ["urn:e:03", "urn:e:04", "urn:e:05"]
    assert await ids(limit=3, offset=4) == ["urn:e:04", "urn:e:05", "urn:e:06"]
    assert await store.count_entities(EntityQuery(types=["Sensor"], limit=1)) == 6
    assert await store.count_entities(EntityQuery(bbox=(2.5, 100, 5, 106))) == 3
    assert await store.count_entities(EntityQuery(ids=[])) == 0
    page = await store.query_entities(EntityQuery(types=["Camera"], limit=2))
    assert [e.value("n") for e in page] == [0, 2]
    assert await store.entity_types() == {"Camera": 6, "Other": 1, "Sensor": 6}
    assert sorted(await store.entity_ids(["Other"])) == [("urn:x:a_b", "Other")]
    assert len(await store.entity_ids()) == 13
    assert await store.entity_ids([]) == []


async def test_apply_after_close_is_unavailable(make_store: Callable[[], Store]) -> None:
    """apply() on a store that is not open raises Unavailable instead of waiting forever."""
    s = make_store()
    with pytest.raises(Unavailable):
        await s.apply([DeleteEntity("urn:x", missing_ok=True)])
    await s.open()
    await s.ping()
    await s.close()
    with pytest.raises(Unavailable):
        await s.apply([DeleteEntity("urn:x", missing_ok=True)])


async def test_awkward_text_round_trips(store: Store) -> None:
    """Quotes, backslashes, newlines and non-ASCII text survive every path."""
    eid = 'urn:x:"quoted"\\back\'slash ünï ☃'
    value = {"s": 'line\nbreak "q" \\ ☃', "n": [1.5, None, True]}
    await store.apply(
        [
            UpsertEntity(entity(eid, attrs={"na'me": prop("ü")}), mode="create"),
            WriteObservations([ObservationRow(eid, 'a"b', ts(1), value, "u'nit")]),
        ]
    )
    got = await store.get_entity(eid)
    assert got is not None and got.attrs["na'me"]["value"] == "ü"
    assert got.attrs['a"b'] == prop(value, observedAt=ts(1), unitCode="u'nit")
    assert [(r.attr, r.value) for r in await store.history(eid, 'a"b')] == [('a"b', value)]
