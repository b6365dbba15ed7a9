"""History rows keyed by (entity, attribute, observedAt, instance): observations stay idempotent, attribute
writes never replace each other; merging SetAttrs; the migration that added the key column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from citybrain.errors import NotFound, ValidationError
from citybrain.model.entity import Entity, ObservationRow
from citybrain.store import SetAttrs, Store, UpsertEntity, WriteObservations
from citybrain.store import postgres as pg_adapter
from citybrain.store import sqlite as sqlite_adapter
from citybrain.store.base import patch_attr

E = "urn:ngsi-ld:Sensor:s1"
T0, T1 = "2024-01-01T00:00:00.000Z", "2024-01-01T00:01:00.000Z"


async def sensor(store: Store, **attrs: Any) -> None:
    """Create the test sensor (without history, so that only the writes under test are in it)."""
    await store.apply([UpsertEntity(Entity(id=E, type="Sensor", attrs=attrs, created_at=T0), history=False)])


async def test_reingesting_an_observation_keeps_one_row(store: Store) -> None:
    """The same (entity, attribute, observedAt) stored again replaces its row: replays stay idempotent."""
    await sensor(store)
    for value in (1.0, 1.0, 2.0):
        await store.apply([WriteObservations([ObservationRow(E, "pm25", T1, value, "GQ")])])
    rows = await store.history(E, "pm25")
    assert [(r.observed_at, r.value) for r in rows] == [(T1, 2.0)]


async def test_temporal_batch_records_each_instance_once(store: Store) -> None:
    """A batch that sets an attribute and records it as an observation keeps one row, also when re-sent."""
    await sensor(store)
    for _ in range(2):
        attr = {"type": "Property", "value": 7, "observedAt": T1}
        await store.apply([SetAttrs(E, {"speed": attr}, T1), WriteObservations([ObservationRow(E, "speed", T1, 7)])])
    assert [(r.observed_at, r.value) for r in await store.history(E, "speed")] == [(T1, 7)]


async def test_attribute_writes_never_replace_each_other(store: Store) -> None:
    """Two writes naming one observedAt, and a patch that keeps it, are three rows, oldest first."""
    await sensor(store)
    await store.apply([SetAttrs(E, {"speed": {"type": "Property", "value": 1, "observedAt": T1}}, T1)])
    await store.apply([SetAttrs(E, {"speed": {"type": "Property", "value": 2, "observedAt": T1}}, T1)])
    await store.apply([SetAttrs(E, {"speed": {"value": 3}}, T1, merge="patch_existing")])  # observedAt stays T1
    assert [(r.observed_at, r.value) for r in await store.history(E, "speed")] == [(T1, 1), (T1, 2), (T1, 3)]
    assert [r.value for r in await store.history(E, "speed", last_n=2)] == [2, 3]


async def test_the_same_write_applied_again_is_one_row(store: Store) -> None:
    """An operation delivered twice (same instance) stays one row."""
    await sensor(store)
    op = SetAttrs(E, {"speed": {"type": "Property", "value": 1}}, T1)
    await store.apply([op])
    await store.apply([op])
    assert await store.history_count(E) == 1


async def test_merging_set_attrs(store: Store) -> None:
    """Patches merge into the stored object: keys replace, None removes, a new type replaces the object."""
    await sensor(store, speed={"type": "Property", "value": 1, "unitCode": "KMH",
                               "accuracy": {"type": "Property", "value": 0.5}})
    await store.apply([SetAttrs(E, {"speed": {"value": 2, "accuracy": None, "observedAt": T1}}, T1, merge="patch")])
    got = await store.get_entity(E)
    assert got is not None and got.attrs["speed"] == {"type": "Property", "value": 2, "unitCode": "KMH",
                                                       "observedAt": T1}
    await store.apply([SetAttrs(E, {"speed": {"type": "Relationship", "object": "urn:ngsi-ld:Road:r1"}}, T1,
                                merge="patch")])
    got = await store.get_entity(E)
    assert got is not None and got.attrs["speed"] == {"type": "Relationship", "object": "urn:ngsi-ld:Road:r1"}
    await store.apply([SetAttrs(E, {"flow": {"value": 9}}, T1, merge="patch")])  # absent: created
    await store.apply([SetAttrs(E, {"location": {"type": "GeoProperty",
                                                 "value": {"type": "Point", "coordinates": [1.0, 2.0]}}},
                                T1, merge="patch")])
    got = await store.get_entity(E)
    assert got is not None and got.attrs["flow"] == {"type": "Property", "value": 9}
    assert got.location == {"type": "Point", "coordinates": [1.0, 2.0]}
    with pytest.raises(NotFound):
        await store.apply([SetAttrs(E, {"gone": {"value": 1}}, T1, merge="patch_existing")])
    with pytest.raises(ValidationError):
        await store.apply([SetAttrs(E, {"flow": {"value": None}}, T1, merge="patch")])
    got = await store.get_entity(E)
    assert got is not None and "gone" not in got.attrs and got.attrs["flow"]["value"] == 9


def test_patch_attr_rules() -> None:
    """The merge rule on its own: absent old, removal, a type change, a missing value."""
    assert patch_attr("a", None, {"value": 1, "unitCode": None}) == {"type": "Property", "value": 1}
    assert patch_attr("a", {"type": "Property", "value": 1, "x": 2}, {"x": None}) == {"type": "Property", "value": 1}
    with pytest.raises(ValidationError):
        patch_attr("a", {"type": "Property", "value": 1}, {"type": "Relationship"})


def _v1_then_rows(url: str, pg: bool) -> None:
    """Insert two history rows the way schema version 1 keyed them."""
    rows = [(E, "pm25", T0, "1.0", None), (E, "pm25", T1, "2.0", "GQ")]
    if pg:
        with psycopg.connect(url) as conn:
            conn.cursor().executemany("INSERT INTO history VALUES (%s,%s,%s,%s,%s)", rows)
    else:
        import sqlite3

        with sqlite3.connect(url) as conn:
            conn.executemany("INSERT INTO history VALUES (?,?,?,?,?)", rows)


async def test_migration_keeps_history(
    make_store: Callable[[], Store], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema version 1 gets the instance column; its rows stay, as observations ('')."""
    pg = store_url.startswith("postgresql")
    with monkeypatch.context() as m:
        m.setattr(pg_adapter, "POSTGRES_MIGRATIONS", pg_adapter.POSTGRES_MIGRATIONS[:1])
        m.setattr(sqlite_adapter, "SQLITE_MIGRATIONS", sqlite_adapter.SQLITE_MIGRATIONS[:1])
        old = make_store()
        await old.open()
        await old.close()
    _v1_then_rows(store_url, pg)
    store = make_store()
    await store.open()
    try:
        assert [(r.observed_at, r.value, r.unit) for r in await store.history(E)] == [(T0, 1.0, None), (T1, 2.0, "GQ")]
        await store.apply([WriteObservations([ObservationRow(E, "pm25", T1, 3.0, "GQ")])])  # still the same row
        assert [r.value for r in await store.history(E)] == [1.0, 3.0]
    finally:
        await store.close()
