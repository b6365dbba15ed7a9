"""PostgreSQL adapter, the write side: how each store operation becomes SQL in the writer's transaction.

Rows travel as one JSON array per statement; every statement touches each key once. The commit around
these (group commit, lock order, retries, events) is PostgresStore._commit_on with pgorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import AsyncCursor

from citybrain.errors import AlreadyExists, Conflict, NotFound
from citybrain.model.entity import ObservationRow
from citybrain.store.base import (
    AddDeadLetter,
    AppendEvent,
    DeleteAttrs,
    DeleteDoc,
    DeleteEntity,
    MarkReplayed,
    Op,
    PutDoc,
    SetAttrs,
    UpsertEntity,
    WriteObservations,
    dumps,
    join_attr,
    patched,
    point_of,
    split_attr,
)

Cur = AsyncCursor[tuple[Any, ...]]

NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
# Rows travel as one JSON array of arrays: far cheaper to send than per-row parameters or text[] arrays.
_ROWS5 = "SELECT r->>0, r->>1, r->>2, r->>3, r->>4 FROM json_array_elements(%s::json) r"
# observations keep instance '' (the column default): storing the same reading again replaces its row
_OBS_HISTORY = (
    f"INSERT INTO history(entity_id, name, observed_at, value, unit) {_ROWS5} "
    "ON CONFLICT (entity_id, name, observed_at, instance) DO UPDATE SET value=excluded.value, unit=excluded.unit"
)
_ATTR_HISTORY = (
    "INSERT INTO history(entity_id, name, observed_at, instance, value, unit) "
    "SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5 FROM json_array_elements(%s::json) r "
    "ON CONFLICT (entity_id, name, observed_at, instance) DO UPDATE SET value=excluded.value, unit=excluded.unit"
)
_OBS_STATE = (
    f"INSERT INTO attrs(entity_id, name, value, observed_at, unit) {_ROWS5} "
    "ON CONFLICT (entity_id, name) DO UPDATE SET value=excluded.value, observed_at=excluded.observed_at, "
    "unit=coalesce(excluded.unit, attrs.unit) "
    "WHERE attrs.observed_at IS NULL OR excluded.observed_at >= attrs.observed_at"
)
_ATTR_UPSERT = (
    "INSERT INTO attrs(entity_id, name, value, observed_at, unit, extra) "
    "SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5 FROM json_array_elements(%s::json) r "
    "ON CONFLICT (entity_id, name) DO UPDATE SET value=excluded.value, observed_at=excluded.observed_at, "
    "unit=excluded.unit, extra=excluded.extra"
)


def _json_rows(rows: Sequence[tuple[Any, ...]]) -> tuple[str]:
    """Return the parameters of a json_array_elements statement: the rows as one JSON text."""
    return (orjson.dumps(rows).decode(),)


def observation_rows(rows: Sequence[ObservationRow]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Return (history, state) rows of observations, each key once (a statement may touch a row only once).

    History keeps the last row per (entity, attr, observedAt), like INSERT OR REPLACE; state keeps the
    newest observedAt per (entity, attr), later rows winning ties, carrying a unit forward if omitted."""
    hist: dict[tuple[str, str, str], tuple[str, str | None]] = {}
    state: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    for r in rows:
        value = dumps(r.value)
        hist[(r.entity_id, r.attr, r.observed_at)] = (value, r.unit)
        key = (r.entity_id, r.attr)
        cur = state.get(key)
        if cur is None:
            state[key] = (value, r.observed_at, r.unit)
        elif r.observed_at >= cur[1]:
            state[key] = (value, r.observed_at, cur[2] if r.unit is None else r.unit)
    return [(e, a, t, v, u) for (e, a, t), (v, u) in hist.items()], [
        (e, a, v, t, u) for (e, a), (v, t, u) in state.items()
    ]


async def apply_op(cur: Cur, op: Op, observed: set[tuple[str, str, str]]) -> None:
    """Apply one operation in the writer's transaction; events are inserted last, by the commit (pgorder)."""
    if isinstance(op, WriteObservations):
        if op.rows:
            hist, state = observation_rows(op.rows)
            await cur.execute(_OBS_HISTORY, _json_rows(hist))
            await cur.execute(_OBS_STATE, _json_rows(state))
    elif isinstance(op, UpsertEntity):
        await _upsert_entity(cur, op, observed)
    elif isinstance(op, SetAttrs):
        await _require(cur, op.entity_id)
        attrs = await _merged(cur, op) if op.merge else op.attrs
        await _write_attrs(cur, op.entity_id, attrs, op.modified_at, op.history, op.instance, observed)
        await cur.execute(
            "UPDATE entities SET modified_at=%s WHERE id=%s", (op.modified_at, op.entity_id)
        )
        if "location" in attrs:
            await _set_location(cur, op.entity_id, attrs["location"].get("value"))
    elif isinstance(op, DeleteAttrs):
        await _require(cur, op.entity_id)
        await cur.execute(
            "DELETE FROM attrs WHERE entity_id=%s AND name = ANY(%s::text[]) RETURNING name",
            (op.entity_id, op.names),
        )
        gone = {r[0] for r in await cur.fetchall()}
        for name in op.names:
            if name not in gone:
                raise NotFound(f"attribute {name} not found on {op.entity_id}", field=name)
        if "location" in gone:
            await _set_location(cur, op.entity_id, None)
        await cur.execute(
            "UPDATE entities SET modified_at=%s WHERE id=%s", (op.modified_at, op.entity_id)
        )
    elif isinstance(op, DeleteEntity):
        await cur.execute("DELETE FROM entities WHERE id=%s", (op.id,))
        if cur.rowcount == 0 and not op.missing_ok:
            raise NotFound(f"entity {op.id} not found", field="id")
        await cur.execute("DELETE FROM attrs WHERE entity_id=%s", (op.id,))
    elif isinstance(op, PutDoc):
        await _put_doc(cur, op)
    elif isinstance(op, DeleteDoc):
        await cur.execute("DELETE FROM docs WHERE collection=%s AND id=%s", (op.collection, op.id))
    elif isinstance(op, AppendEvent):
        pass  # _commit_on inserts the group's events last, in commit order (pgorder.append_events)
    elif isinstance(op, AddDeadLetter):
        await cur.execute(
            "INSERT INTO deadletters(time, source, reason, payload) VALUES (%s,%s,%s,%s)",
            (op.time, op.source, op.reason, op.payload),
        )
    elif isinstance(op, MarkReplayed):
        await cur.execute("UPDATE deadletters SET replayed=TRUE WHERE seq = ANY(%s::bigint[])", (list(op.seqs),))
    else:  # pragma: no cover - the Op union is closed
        raise TypeError(f"unknown store operation {op!r}")


async def _merged(cur: Cur, op: SetAttrs) -> dict[str, Any]:
    """Merge the patches of `op` into the stored attributes, read under a row lock."""
    await cur.execute(
        "SELECT name, value, observed_at, unit, extra FROM attrs "
        "WHERE entity_id=%s AND name = ANY(%s::text[]) FOR UPDATE",
        (op.entity_id, list(op.attrs)),
    )
    return patched(op, {r[0]: join_attr(r[1], r[2], r[3], r[4]) for r in await cur.fetchall()})


async def _require(cur: Cur, entity_id: str) -> None:
    await cur.execute("SELECT 1 FROM entities WHERE id=%s", (entity_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"entity {entity_id} not found", field="id")


async def _put_doc(cur: Cur, op: PutDoc) -> None:
    await cur.execute(
        "SELECT version FROM docs WHERE collection=%s AND id=%s FOR UPDATE", (op.collection, op.id)
    )
    row = await cur.fetchone()
    current = row[0] if row else 0
    if op.expect_version is not None and op.expect_version != current:
        if op.expect_version == 0:
            raise AlreadyExists(f"{op.collection}/{op.id} already exists", field="id")
        raise Conflict(
            f"{op.collection}/{op.id} changed (version {current}, expected {op.expect_version})"
        )
    if row is None:  # a concurrent insert by another process raises UniqueViolation -> AlreadyExists
        await cur.execute(
            "INSERT INTO docs(collection, id, data, version, updated_at) "
            f"VALUES (%s,%s,%s::jsonb,1,{NOW})",
            (op.collection, op.id, dumps(op.data)),
        )
    else:
        await cur.execute(
            f"UPDATE docs SET data=%s::jsonb, version=version+1, updated_at={NOW} "
            "WHERE collection=%s AND id=%s",
            (dumps(op.data), op.collection, op.id),
        )


async def _upsert_entity(cur: Cur, op: UpsertEntity, observed: set[tuple[str, str, str]]) -> None:
    e = op.entity
    await cur.execute("SELECT 1 FROM entities WHERE id=%s FOR UPDATE", (e.id,))
    exists = await cur.fetchone() is not None
    if op.mode == "create" and exists:
        raise AlreadyExists(f"entity {e.id} already exists", field="id")
    if op.mode == "update" and not exists:
        raise NotFound(f"entity {e.id} not found", field="id")
    attrs = dict(e.attrs)
    location = e.location
    if location is None and "location" in attrs:
        location = attrs["location"].get("value")
    lon, lat = point_of(location)
    loc = dumps(location) if location else None
    if not exists:
        await cur.execute(
            "INSERT INTO entities(id, type, place, location, lon, lat, created_at, modified_at, scope) "
            "VALUES (%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s)",
            (e.id, e.type, e.place, loc, lon, lat, e.created_at, e.modified_at or e.created_at, e.scope),
        )
    elif op.mode == "replace":
        await cur.execute("DELETE FROM attrs WHERE entity_id=%s", (e.id,))
        await cur.execute(
            "UPDATE entities SET type=%s, place=%s, location=%s::jsonb, lon=%s, lat=%s, "
            "modified_at=coalesce(nullif(%s, ''), modified_at), scope=%s WHERE id=%s",
            (e.type, e.place, loc, lon, lat, e.modified_at, e.scope, e.id),
        )
    else:
        await cur.execute(
            "UPDATE entities SET modified_at=coalesce(nullif(%s, ''), modified_at), "
            "place=coalesce(%s, place), scope=coalesce(%s, scope) WHERE id=%s",
            (e.modified_at, e.place, e.scope, e.id),
        )
        if location is not None:
            await _set_location(cur, e.id, location)
    if attrs:
        await _write_attrs(cur, e.id, attrs, e.modified_at or e.created_at, op.history, op.instance, observed)


async def _set_location(cur: Cur, entity_id: str, location: dict[str, Any] | None) -> None:
    lon, lat = point_of(location)
    await cur.execute(
        "UPDATE entities SET location=%s::jsonb, lon=%s, lat=%s WHERE id=%s",
        (dumps(location) if location else None, lon, lat, entity_id),
    )


async def _write_attrs(
    cur: Cur, entity_id: str, attrs: dict[str, Any], when: str, history: bool, instance: str,
    observed: set[tuple[str, str, str]],
) -> None:
    state: list[tuple[Any, ...]] = []
    hist: list[tuple[Any, ...]] = []
    for name, attr in attrs.items():
        value, observed_at, unit, extra = split_attr(attr)
        state.append((entity_id, name, value, observed_at, unit, extra))
        at = observed_at or when
        if history and (entity_id, name, at) not in observed:
            hist.append((entity_id, name, at, instance, value, unit))
    await cur.execute(_ATTR_UPSERT, _json_rows(state))
    if hist:
        await cur.execute(_ATTR_HISTORY, _json_rows(hist))
