"""How the writers of several processes share one PostgreSQL database without losing or reordering anything.

Each process has its own writer connection doing group commits. Three rules keep them apart:

- Fixed lock order. A transaction first locks every entity row and every document row its batches touch,
  entities before documents, each sorted by key, in one statement each. Every later row it writes (attributes,
  history, the entity itself) belongs to a row it already holds, so two transactions cannot each hold what
  the other waits for. What cannot be locked ahead (a row that does not exist yet) is left to the retry.
- Retry inside the store. A transaction that still dies of a deadlock or a serialization failure is rolled
  back and run again after a short jittered pause; the caller only sees the outcome.
- Events in commit order. Events are inserted last, after an advisory lock held until commit, so their
  `seq` (taken from the sequence while holding it) increases in commit order across processes: a reader of
  `events(after=last_seq)` never sees seq n+1 committed before seq n and skips n for ever.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import AsyncCursor
from psycopg import errors as pgerrors

from citybrain.errors import ValidationError
from citybrain.events import Event
from citybrain.store.base import (
    AppendEvent,
    DeleteAttrs,
    DeleteDoc,
    DeleteEntity,
    Op,
    PutDoc,
    SetAttrs,
    UpsertEntity,
    WriteObservations,
)

Cur = AsyncCursor[tuple[Any, ...]]

# a JSON \u0000 escape: preceded by an even number of backslashes (an odd one escapes the backslash)
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
RETRYABLE = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)
# one advisory key per schema: tenants (and test runs) living in other schemas of the database do not wait
_EVENTS_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('citybrain events ' || current_schema(), 0))"

_LOCK_ENTITIES = "SELECT 1 FROM entities WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE"
_LOCK_DOCS = (
    "SELECT 1 FROM docs WHERE (collection, id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) "
    "ORDER BY collection, id FOR UPDATE"
)
# one statement for a whole group's events; WITH ORDINALITY keeps the batches' order in their seq
_EVENTS = (
    "INSERT INTO events(id, type, time, context, data) "
    "SELECT r->>0, r->>1, r->>2, (r->3)::jsonb, (r->4)::jsonb "
    "FROM json_array_elements(%s::json) WITH ORDINALITY AS e(r, n) ORDER BY n "
    "ON CONFLICT (id) DO NOTHING"
)


def touched(batches: Sequence[Sequence[Op]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the entity ids and (collection, id) document keys the batches write, each once."""
    entities: set[str] = set()
    docs: set[tuple[str, str]] = set()
    for ops in batches:
        for op in ops:
            if isinstance(op, WriteObservations):
                entities.update(r.entity_id for r in op.rows)
            elif isinstance(op, SetAttrs | DeleteAttrs):
                entities.add(op.entity_id)
            elif isinstance(op, UpsertEntity):
                entities.add(op.entity.id)
            elif isinstance(op, DeleteEntity):
                entities.add(op.id)
            elif isinstance(op, PutDoc | DeleteDoc):
                docs.add((op.collection, op.id))
    # sorted here only for a stable statement; the database sorts again, in its own collation, before locking.
    # A key PostgreSQL text cannot hold names no row: left out, so that it fails its own batch, not the group.
    return sorted(filter(_storable, entities)), sorted(d for d in docs if _storable(d[0]) and _storable(d[1]))


def _storable(text: str) -> bool:
    """Tell whether a string can be a PostgreSQL text value (no NUL, encodable as UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def lock_rows(cur: Cur, batches: Sequence[Sequence[Op]]) -> None:
    """Lock the existing rows the batches write, in the one order every writer uses."""
    entities, docs = touched(batches)
    if entities:
        await cur.execute(_LOCK_ENTITIES, (entities,))
    if docs:
        await cur.execute(_LOCK_DOCS, ([c for c, _ in docs], [i for _, i in docs]))


def event_rows(ops: Sequence[Op]) -> list[bytes]:
    """Encode the events a batch appends (in order) as JSON rows; raise ValidationError for one PostgreSQL
    would refuse, so that the batch fails alone rather than the group's deferred insert."""
    rows = [orjson.dumps((ev.id, ev.type, ev.time, ev.context.to_dict(), ev.data)) for ev in _events(ops)]
    for row in rows:
        if b"\\u0000" in row and _NUL.search(row):  # jsonb and text hold no NUL character
            raise ValidationError("event: a NUL character cannot be stored", field="event")
    return rows


def _events(ops: Sequence[Op]) -> list[Event]:
    return [op.event for op in ops if isinstance(op, AppendEvent)]


async def append_events(cur: Cur, rows: Sequence[bytes]) -> None:
    """Insert a group's events (event_rows) as the transaction's last writes, under the commit-order lock."""
    if not rows:
        return
    await cur.execute(_EVENTS_LOCK)
    await cur.execute(_EVENTS, ((b"[" + b",".join(rows) + b"]").decode(),))


async def pause(attempt: int) -> None:
    """Sleep before retry `attempt` (1, 2, …): a jittered, doubling pause from ~2 ms up to 200 ms."""
    ceiling = min(0.002 * 2 ** (attempt - 1), 0.2)
    await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
