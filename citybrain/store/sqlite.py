"""SQLite adapter of the store port: one file, WAL, one writer thread, concurrent readers."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from citybrain.errors import AlreadyExists, Conflict, NotFound, Unavailable
from citybrain.events import Event
from citybrain.model.entity import Entity, HistoryRow
from citybrain.regex import search as regex_search
from citybrain.store.base import (
    AddDeadLetter,
    AppendEvent,
    DeadLetter,
    DeleteAttrs,
    DeleteDoc,
    DeleteEntity,
    Doc,
    EntityQuery,
    MarkReplayed,
    Op,
    PutDoc,
    SetAttrs,
    Store,
    UpsertEntity,
    WriteObservations,
    dumps,
    join_attr,
    loads,
    observed_keys,
    patched,
    point_of,
    split_attr,
)
from citybrain.store.schema import SQLITE_MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")

_ATTR_UPSERT = (
    "INSERT INTO attrs(entity_id, name, value, observed_at, unit, extra) VALUES (?,?,?,?,?,?) "
    "ON CONFLICT(entity_id, name) DO UPDATE SET value=excluded.value, observed_at=excluded.observed_at, "
    "unit=excluded.unit, extra=excluded.extra"
)
_OBS_STATE = (
    "INSERT INTO attrs(entity_id, name, value, observed_at, unit) VALUES (?,?,?,?,?) "
    "ON CONFLICT(entity_id, name) DO UPDATE SET value=excluded.value, observed_at=excluded.observed_at, "
    "unit=coalesce(excluded.unit, attrs.unit) "
    "WHERE attrs.observed_at IS NULL OR excluded.observed_at >= attrs.observed_at"
)
# observations keep instance '': the same reading stored again replaces its row (idempotent ingest)
_HISTORY = "INSERT OR REPLACE INTO history(entity_id, name, observed_at, value, unit) VALUES (?,?,?,?,?)"
_ATTR_HISTORY = (
    "INSERT OR REPLACE INTO history(entity_id, name, observed_at, instance, value, unit) VALUES (?,?,?,?,?,?)"
)


def _regexp(pattern: str, value: str | None) -> bool:
    # RE2, never Python's backtracking re: the pattern is a user's idPattern (citybrain/regex.py)
    return value is not None and regex_search(pattern, value)


INLINE_READ_MAX = 16  # get_entities of at most this many ids runs on the caller's thread


def private_files(db: Path) -> None:
    """Make the database file and its WAL and SHM readable by their owner only (0600), like the node's
    secret files: whoever reads the store reads every identity, grant and event. A new database is created
    0600 (SQLite gives its -wal and -shm the database file's mode); existing files are tightened."""
    fd = os.open(db, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                path.chmod(mode & 0o700)
                log.info("store file %s was mode %o; now %o (owner only)", path, mode, mode & 0o700)
        except FileNotFoundError:
            continue


class SqliteStore(Store):
    """The embedded default: a single SQLite file in WAL mode."""

    def __init__(self, path: str, max_batches: int = 256) -> None:
        super().__init__(max_batches)
        self.path = path
        self.url = path
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._wconn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._optimistic_failures = 3  # failed batches retried without savepoints before using them

    # connections -----------------------------------------------------------------------------
    def _new_conn(self, cache_kib: int = 65536) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at commit in WAL, survives process crash
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA busy_timeout=30000")
        # the writer's 64 MiB: history inserts land all over its primary key; readers (up to 5 connections,
        # point reads and scans) get 16 MiB each, so page caches stay under ~150 MiB as the database grows
        conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        conn.execute("PRAGMA wal_autocheckpoint=10000")  # checkpoint (and fsync) every ~40 MiB, not ~4 MiB
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.create_function("regexp", 2, _regexp, deterministic=True)
        with self._lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_conn(cache_kib=16384)
            self._local.conn = conn
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool, lambda: fn(self._reader()))

    def _read_inline(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a point read (primary-key lookups, tens of microseconds) on the calling thread.

        Handing such a read to the reader pool costs more than the read itself (thread switch, future,
        GIL hand-over): under an NGSI-LD GET load it was half the request time. WAL readers never wait for
        the writer, so this does not stall the event loop.
        """
        return fn(self._reader())

    async def _connect(self) -> None:
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            private_files(Path(self.path))
        loop = asyncio.get_running_loop()
        self._wconn = await loop.run_in_executor(self._writer_pool, self._new_conn)

    async def _disconnect(self) -> None:
        loop = asyncio.get_running_loop()

        def close_all() -> None:
            with self._lock:
                for conn in self._all:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
                self._all.clear()

        await loop.run_in_executor(self._writer_pool, close_all)
        self._local = threading.local()

    async def migrate(self) -> None:
        """Apply pending migrations in the writer thread."""
        assert self._wconn is not None
        conn = self._wconn

        def run() -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in SQLITE_MIGRATIONS:
                if version in done:
                    continue
                conn.execute("BEGIN IMMEDIATE")
                for statement in [s for s in sql.split(";\n") if s.strip()]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))", (version,)
                )
                conn.execute("COMMIT")

        await asyncio.get_running_loop().run_in_executor(self._writer_pool, run)

    async def ping(self) -> None:
        """Run a trivial query."""
        try:
            await self._read(lambda c: c.execute("SELECT 1").fetchone())
        except sqlite3.Error as exc:
            raise Unavailable(f"sqlite: {exc}") from exc

    # writing ---------------------------------------------------------------------------------
    async def _commit(self, batches: list[Sequence[Op]]) -> list[BaseException | None]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_pool, self._commit_sync, batches)

    def _commit_sync(self, batches: list[Sequence[Op]]) -> list[BaseException | None]:
        """Commit the group in one transaction; a failing batch fails alone.

        Savepoints cost (SQLite copies every page a savepoint touches into a sub-journal), so the group
        first runs without them: if batch i fails, the transaction is rolled back and run again without
        batch i. After a few failures, one pass with a savepoint per batch settles the rest."""
        conn = self._wconn
        assert conn is not None
        failed: dict[int, BaseException] = {}
        while True:
            savepoints = len(failed) >= self._optimistic_failures
            conn.execute("BEGIN IMMEDIATE")
            try:
                for i, ops in enumerate(batches):
                    if i in failed:
                        continue
                    if savepoints:
                        conn.execute("SAVEPOINT b")
                    try:
                        observed = observed_keys(ops)
                        for op in ops:
                            self._apply_op(conn, op, observed)
                    except Exception as exc:
                        failed[i] = exc
                        if not savepoints:
                            if conn.in_transaction:  # some errors (SQLITE_FULL …) already rolled it back
                                conn.execute("ROLLBACK")
                            break
                        conn.execute("ROLLBACK TO b")
                    if savepoints:
                        conn.execute("RELEASE b")
                else:
                    conn.execute("COMMIT")
                    return [failed.get(i) for i in range(len(batches))]
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if len(failed) == len(batches):
                return [failed[i] for i in range(len(batches))]

    def _apply_op(self, conn: sqlite3.Connection, op: Op, observed: set[tuple[str, str, str]]) -> None:
        if isinstance(op, WriteObservations):
            rows = op.rows
            if not rows:
                return
            enc = [(r.entity_id, r.attr, r.observed_at, dumps(r.value), r.unit) for r in rows]
            conn.executemany(_HISTORY, enc)
            conn.executemany(_OBS_STATE, [(e, a, v, t, u) for e, a, t, v, u in enc])
        elif isinstance(op, UpsertEntity):
            self._upsert_entity(conn, op, observed)
        elif isinstance(op, SetAttrs):
            if conn.execute("SELECT 1 FROM entities WHERE id=?", (op.entity_id,)).fetchone() is None:
                raise NotFound(f"entity {op.entity_id} not found", field="id")
            attrs = self._merged(conn, op) if op.merge else op.attrs
            self._write_attrs(conn, op.entity_id, attrs, op.modified_at, op.history, op.instance, observed)
            conn.execute("UPDATE entities SET modified_at=? WHERE id=?", (op.modified_at, op.entity_id))
            if "location" in attrs:
                self._set_location(conn, op.entity_id, attrs["location"].get("value"))
        elif isinstance(op, DeleteAttrs):
            if conn.execute("SELECT 1 FROM entities WHERE id=?", (op.entity_id,)).fetchone() is None:
                raise NotFound(f"entity {op.entity_id} not found", field="id")
            for name in op.names:
                cur = conn.execute("DELETE FROM attrs WHERE entity_id=? AND name=?", (op.entity_id, name))
                if cur.rowcount == 0:
                    raise NotFound(f"attribute {name} not found on {op.entity_id}", field=name)
                if name == "location":
                    self._set_location(conn, op.entity_id, None)
            conn.execute("UPDATE entities SET modified_at=? WHERE id=?", (op.modified_at, op.entity_id))
        elif isinstance(op, DeleteEntity):
            cur = conn.execute("DELETE FROM entities WHERE id=?", (op.id,))
            if cur.rowcount == 0 and not op.missing_ok:
                raise NotFound(f"entity {op.id} not found", field="id")
            conn.execute("DELETE FROM attrs WHERE entity_id=?", (op.id,))
        elif isinstance(op, PutDoc):
            row = conn.execute(
                "SELECT version FROM docs WHERE collection=? AND id=?", (op.collection, op.id)
            ).fetchone()
            current = row[0] if row else 0
            if op.expect_version is not None and op.expect_version != current:
                if op.expect_version == 0:
                    raise AlreadyExists(f"{op.collection}/{op.id} already exists", field="id")
                raise Conflict(f"{op.collection}/{op.id} changed (version {current}, expected {op.expect_version})")
            conn.execute(
                "INSERT INTO docs(collection, id, data, version, updated_at) VALUES (?,?,?,?,"
                "strftime('%Y-%m-%dT%H:%M:%fZ','now')) ON CONFLICT(collection, id) DO UPDATE SET "
                "data=excluded.data, version=excluded.version, updated_at=excluded.updated_at",
                (op.collection, op.id, dumps(op.data), current + 1),
            )
        elif isinstance(op, DeleteDoc):
            conn.execute("DELETE FROM docs WHERE collection=? AND id=?", (op.collection, op.id))
        elif isinstance(op, AppendEvent):
            ev = op.event
            conn.execute(
                "INSERT OR IGNORE INTO events(id, type, time, context, data) VALUES (?,?,?,?,?)",
                (ev.id, ev.type, ev.time, dumps(ev.context.to_dict()), dumps(ev.data)),
            )
        elif isinstance(op, AddDeadLetter):
            conn.execute(
                "INSERT INTO deadletters(time, source, reason, payload, replayed) VALUES (?,?,?,?,0)",
                (op.time, op.source, op.reason, op.payload),
            )
        elif isinstance(op, MarkReplayed):
            conn.executemany("UPDATE deadletters SET replayed=1 WHERE seq=?", [(s,) for s in op.seqs])
        else:  # pragma: no cover - the Op union is closed
            raise TypeError(f"unknown store operation {op!r}")

    @staticmethod
    def _merged(conn: sqlite3.Connection, op: SetAttrs) -> dict[str, Any]:
        """Merge the patches of `op` into the stored attributes; the writer holds the file's write lock."""
        names = list(op.attrs)
        marks = ",".join("?" * len(names))
        rows = conn.execute(
            f"SELECT name, value, observed_at, unit, extra FROM attrs WHERE entity_id=? AND name IN ({marks})",
            [op.entity_id, *names],
        ).fetchall()
        return patched(op, {r[0]: join_attr(r[1], r[2], r[3], r[4]) for r in rows})

    def _upsert_entity(self, conn: sqlite3.Connection, op: UpsertEntity, observed: set[tuple[str, str, str]]) -> None:
        e = op.entity
        exists = conn.execute("SELECT 1 FROM entities WHERE id=?", (e.id,)).fetchone() is not None
        if op.mode == "create" and exists:
            raise AlreadyExists(f"entity {e.id} already exists", field="id")
        if op.mode == "update" and not exists:
            raise NotFound(f"entity {e.id} not found", field="id")
        attrs = dict(e.attrs)
        location = e.location
        if location is None and "location" in attrs:
            location = attrs["location"].get("value")
        lon, lat = point_of(location)
        if not exists:
            conn.execute(
                "INSERT INTO entities(id, type, place, location, lon, lat, created_at, modified_at, scope) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (e.id, e.type, e.place, dumps(location) if location else None, lon, lat,
                 e.created_at, e.modified_at or e.created_at, e.scope),
            )
        else:
            if op.mode == "replace":
                conn.execute("DELETE FROM attrs WHERE entity_id=?", (e.id,))
                conn.execute(
                    "UPDATE entities SET type=?, place=?, location=?, lon=?, lat=?, "
                    "modified_at=coalesce(nullif(?, ''), modified_at), scope=? WHERE id=?",
                    (e.type, e.place, dumps(location) if location else None, lon, lat, e.modified_at, e.scope, e.id),
                )
            else:
                conn.execute(
                    "UPDATE entities SET modified_at=coalesce(nullif(?, ''), modified_at), place=coalesce(?, place), "
                    "scope=coalesce(?, scope) WHERE id=?",
                    (e.modified_at, e.place, e.scope, e.id),
                )
                if location is not None:
                    self._set_location(conn, e.id, location)
        if attrs:
            self._write_attrs(conn, e.id, attrs, e.modified_at or e.created_at, op.history, op.instance, observed)

    def _set_location(self, conn: sqlite3.Connection, entity_id: str, location: dict[str, Any] | None) -> None:
        lon, lat = point_of(location)
        conn.execute(
            "UPDATE entities SET location=?, lon=?, lat=? WHERE id=?",
            (dumps(location) if location else None, lon, lat, entity_id),
        )

    def _write_attrs(
        self, conn: sqlite3.Connection, entity_id: str, attrs: dict[str, Any], when: str, history: bool,
        instance: str, observed: set[tuple[str, str, str]],
    ) -> None:
        state = []
        hist = []
        for name, attr in attrs.items():
            value, observed_at, unit, extra = split_attr(attr)
            state.append((entity_id, name, value, observed_at, unit, extra))
            at = observed_at or when
            if history and (entity_id, name, at) not in observed:
                hist.append((entity_id, name, at, instance, value, unit))
        conn.executemany(_ATTR_UPSERT, state)
        if hist:
            conn.executemany(_ATTR_HISTORY, hist)

    # reading ---------------------------------------------------------------------------------
    @staticmethod
    def _attach_attrs(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Entity]:
        if not rows:
            return []
        entities: dict[str, Entity] = {}
        for r in rows:
            entities[r[0]] = Entity(
                id=r[0], type=r[1], place=r[2], location=loads(r[3]), created_at=r[4] or "",
                modified_at=r[5] or "", scope=r[6], attrs={},
            )
        ids = list(entities)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for eid, name, value, observed_at, unit, extra in conn.execute(
                f"SELECT entity_id, name, value, observed_at, unit, extra FROM attrs WHERE entity_id IN ({marks}) "
                "ORDER BY entity_id, name",
                chunk,
            ):
                entities[eid].attrs[name] = join_attr(value, observed_at, unit, extra)
        return list(entities.values())

    _ECOLS = "id, type, place, location, created_at, modified_at, scope"

    async def get_entity(self, entity_id: str) -> Entity | None:
        """Return one entity or None."""
        found = await self.get_entities([entity_id])
        return found.get(entity_id)

    async def get_entities(self, ids: Sequence[str]) -> dict[str, Entity]:
        """Return existing entities among ids."""
        ids = list(ids)

        def run(conn: sqlite3.Connection) -> dict[str, Entity]:
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"SELECT {self._ECOLS} FROM entities WHERE id IN ({marks})", chunk).fetchall()
            return {e.id: e for e in self._attach_attrs(conn, rows)}

        if len(ids) <= INLINE_READ_MAX:
            return self._read_inline(run)
        return await self._read(run)

    @staticmethod
    def _where(q: EntityQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (("type", q.types), ("id", q.ids), ("place", q.places)):
            if values is not None:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
                params += values
        if q.id_pattern:
            clauses.append("regexp(?, id)")
            params.append(q.id_pattern)
        if q.bbox:
            clauses.append("lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?")
            params += [q.bbox[0], q.bbox[2], q.bbox[1], q.bbox[3]]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def query_entities(self, query: EntityQuery) -> list[Entity]:
        """Return matching entities ordered by id."""
        where, params = self._where(query)

        def run(conn: sqlite3.Connection) -> list[Entity]:
            rows = conn.execute(
                f"SELECT {self._ECOLS} FROM entities{where} ORDER BY id LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
            if not query.with_attrs:
                return [Entity(id=r[0], type=r[1], place=r[2], location=loads(r[3]), created_at=r[4] or "",
                               modified_at=r[5] or "", scope=r[6], attrs={}) for r in rows]
            return self._attach_attrs(conn, rows)

        return await self._read(run)

    async def count_entities(self, query: EntityQuery) -> int:
        """Count matching entities."""
        where, params = self._where(query)
        return int(await self._read(lambda c: c.execute(f"SELECT count(*) FROM entities{where}", params).fetchone()[0]))

    async def entity_ids(self, types: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """Return (id, type) pairs."""
        if types is None:
            return await self._read(lambda c: [tuple(r) for r in c.execute("SELECT id, type FROM entities")])  # type: ignore[misc]
        t = list(types)
        marks = ",".join("?" * len(t)) or "NULL"
        return await self._read(
            lambda c: [tuple(r) for r in c.execute(f"SELECT id, type FROM entities WHERE type IN ({marks})", t)]  # type: ignore[misc]
        )

    async def entity_types(self) -> dict[str, int]:
        """Return type -> count."""
        return await self._read(
            lambda c: {r[0]: r[1] for r in c.execute("SELECT type, count(*) FROM entities GROUP BY type ORDER BY type")}
        )

    async def history(
        self,
        entity_id: str,
        attr: str | None = None,
        since: str | None = None,
        until: str | None = None,
        last_n: int | None = None,
        limit: int = 10000,
    ) -> list[HistoryRow]:
        """Return past values oldest first."""
        clauses = ["entity_id=?"]
        params: list[Any] = [entity_id]
        if attr is not None:
            clauses.append("name=?")
            params.append(attr)
        if since is not None:
            clauses.append("observed_at>=?")
            params.append(since)
        if until is not None:
            clauses.append("observed_at<?")
            params.append(until)
        where = " AND ".join(clauses)
        if last_n is not None:
            sql = (f"SELECT * FROM (SELECT entity_id, name, observed_at, value, unit, instance FROM history WHERE {where} "
                   "ORDER BY observed_at DESC, name DESC, instance DESC LIMIT ?) ORDER BY observed_at, name, instance")
            params.append(min(last_n, limit))
        else:
            sql = (f"SELECT entity_id, name, observed_at, value, unit FROM history WHERE {where} "
                   "ORDER BY observed_at, name, instance LIMIT ?")
            params.append(limit)

        def run(conn: sqlite3.Connection) -> list[HistoryRow]:
            return [
                HistoryRow(entity_id=r[0], attr=r[1], observed_at=r[2], value=loads(r[3]), unit=r[4])
                for r in conn.execute(sql, params)
            ]

        return await self._read(run)

    async def history_count(self, entity_id: str | None = None) -> int:
        """Count history rows."""
        if entity_id is None:
            return int(await self._read(lambda c: c.execute("SELECT count(*) FROM history").fetchone()[0]))
        return int(
            await self._read(lambda c: c.execute("SELECT count(*) FROM history WHERE entity_id=?", (entity_id,)).fetchone()[0])
        )

    async def events(self, after: int = 0, type_prefix: str | None = None, limit: int = 1000) -> list[Event]:
        """Return events after seq."""
        params: list[Any] = [after]
        sql = "SELECT seq, id, type, time, context, data FROM events WHERE seq>?"
        if type_prefix:  # not LIKE: it is case-insensitive and treats _ and % as wildcards
            sql += " AND substr(type, 1, ?) = ?"
            params += [len(type_prefix), type_prefix]
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)

        def run(conn: sqlite3.Connection) -> list[Event]:
            from citybrain.context import Context

            return [
                Event(seq=r[0], id=r[1], type=r[2], time=r[3], context=Context.from_dict(loads(r[4])),
                      data=loads(r[5]))
                for r in conn.execute(sql, params)
            ]

        return await self._read(run)

    async def get_doc(self, collection: str, doc_id: str) -> Doc | None:
        """Return one document."""

        def run(conn: sqlite3.Connection) -> Doc | None:
            r = conn.execute(
                "SELECT data, version, updated_at FROM docs WHERE collection=? AND id=?", (collection, doc_id)
            ).fetchone()
            return None if r is None else Doc(collection=collection, id=doc_id, data=loads(r[0]), version=r[1], updated_at=r[2])

        return await self._read(run)

    async def list_docs(
        self, collection: str, where: dict[str, Any] | None = None, limit: int = 1000, offset: int = 0
    ) -> list[Doc]:
        """Return documents whose fields equal `where`."""
        clauses = ["collection=?"]
        params: list[Any] = [collection]
        for key, value in (where or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"bad field name {key!r}")
            if value is None:
                clauses.append(f"json_extract(data, '$.{key}') IS NULL")
            else:
                clauses.append(f"json_extract(data, '$.{key}') = ?")
                params.append(int(value) if isinstance(value, bool) else value)
        params += [limit, offset]
        sql = f"SELECT id, data, version, updated_at FROM docs WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ? OFFSET ?"

        def run(conn: sqlite3.Connection) -> list[Doc]:
            return [
                Doc(collection=collection, id=r[0], data=loads(r[1]), version=r[2], updated_at=r[3])
                for r in conn.execute(sql, params)
            ]

        return await self._read(run)

    async def count_docs(self, collection: str, by: str) -> dict[str, int]:
        """Count a collection's documents per value of a top-level field (one GROUP BY)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", by):
            raise ValueError(f"bad field name {by!r}")
        sql = f"SELECT json_extract(data, '$.{by}'), count(*) FROM docs WHERE collection=? GROUP BY 1"
        return await self._read(lambda c: {str(k): n for k, n in c.execute(sql, (collection,))})

    async def deadletters(self, limit: int = 100, include_replayed: bool = False) -> list[DeadLetter]:
        """Return dead letters oldest first."""
        sql = "SELECT seq, time, source, reason, payload, replayed FROM deadletters"
        if not include_replayed:
            sql += " WHERE replayed=0"
        sql += " ORDER BY seq LIMIT ?"
        return await self._read(
            lambda c: [
                DeadLetter(seq=r[0], time=r[1], source=r[2], reason=r[3], payload=r[4], replayed=bool(r[5]))
                for r in c.execute(sql, (limit,))
            ]
        )

    async def mark_replayed(self, seqs: Sequence[int]) -> None:
        """Mark dead letters replayed (through the writer)."""
        seq_list = list(seqs)
        loop = asyncio.get_running_loop()

        def run() -> None:
            assert self._wconn is not None
            self._wconn.executemany("UPDATE deadletters SET replayed=1 WHERE seq=?", [(s,) for s in seq_list])

        await loop.run_in_executor(self._writer_pool, run)
