"""PostgreSQL adapter of the store port: one writer connection doing the group commit, a pool of readers.

The writer runs every group of batches in one transaction (a failing batch fails alone; pgwrite turns each
operation into SQL). Several processes, each with its own writer, share a database through pgorder: rows
locked in one fixed order, a deadlock retried inside the store, events numbered in commit order. If the
writer's connection dies, the group fails with Unavailable and the next commit reconnects with backoff.
Readers use an autocommit pool and retry once on a dropped connection.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from citybrain.errors import AlreadyExists, CityBrainError, Conflict, Unavailable
from citybrain.events import Event
from citybrain.model.entity import Entity, HistoryRow
from citybrain.store.base import (
    DeadLetter,
    Doc,
    EntityQuery,
    Op,
    Store,
    dumps,
    join_attr,
    observed_keys,
)
from citybrain.store.pgorder import RETRYABLE, append_events, event_rows, lock_rows, pause
from citybrain.store.pgwrite import NOW as _NOW
from citybrain.store.pgwrite import apply_op, observation_rows
from citybrain.store.schema import POSTGRES_MIGRATIONS

__all__ = ["PostgresStore", "check_schema", "observation_rows", "schema_url"]

T = TypeVar("T")
Cur = AsyncCursor[tuple[Any, ...]]

_MIGRATION_LOCK = 0x63697479627261  # "citybra": one advisory lock for every process migrating this database
_ECOLS = "id, type, place, location, created_at, modified_at, scope"
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A schema name citybrain creates: letters, digits, _ and -, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
SCHEMA_NAME = re.compile(r"[A-Za-z0-9_\-]{1,63}")


def check_schema(schema: str) -> str:
    """Return `schema` if citybrain may create and address it, else raise ValueError."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name {schema!r}: use 1-63 letters, digits, _ or -")
    return schema


def schema_url(url: str, schema: str) -> str:
    """Return `url` with its connections' search_path set to `schema` alone.

    The setting is appended to any `options` the URL already has (a later -c wins), so a URL that
    already selects a schema still works; the name is quoted, so its case and any - are kept."""
    check_schema(schema)
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = [v for k, v in pairs if k == "options"]
    rest = [(k, v) for k, v in pairs if k != "options"]
    options.append(f'-csearch_path="{schema}"')
    query = urlencode([*rest, ("options", " ".join(options))], quote_via=quote)
    return urlunsplit(parts._replace(query=query))


def _as_error(exc: Exception) -> Exception:
    """Map a database error to the citybrain error hierarchy."""
    if isinstance(exc, CityBrainError):
        return exc
    if isinstance(exc, pgerrors.UniqueViolation):
        return AlreadyExists(f"already exists: {exc.diag.message_detail or exc}")
    if isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        return Conflict(f"postgres: {exc}")
    if isinstance(exc, psycopg.OperationalError):
        return Unavailable(f"postgres: {exc}")
    return exc


class PostgresStore(Store):
    """The server store: PostgreSQL 15+, for several processes and large cities."""

    def __init__(
        self, url: str, max_batches: int = 256, readers: int = 4, reconnect_attempts: int = 5,
        retry_attempts: int = 12,
    ) -> None:
        super().__init__(max_batches)
        self.url = url
        self._readers = readers
        self._reconnect_attempts = reconnect_attempts
        self._kwargs: dict[str, Any] = (
            {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": 5}
        )
        self._wconn: AsyncConnection[tuple[Any, ...]] | None = None
        self._pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]] | None = None
        self.reconnects = 0
        self.retries = 0  # transactions run again after a deadlock or serialization failure
        self._retry_attempts = retry_attempts
        self._optimistic_failures = 3  # failed batches retried without savepoints before using them

    # connections -----------------------------------------------------------------------------
    async def _new_writer(self) -> AsyncConnection[tuple[Any, ...]]:
        return await AsyncConnection.connect(self.url, autocommit=False, **self._kwargs)

    async def _writer_conn(self) -> AsyncConnection[tuple[Any, ...]]:
        """Return the writer connection, reconnecting with backoff if it was lost."""
        conn = self._wconn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._wconn = None
        delay, last = 0.05, None
        for attempt in range(self._reconnect_attempts):
            try:
                self._wconn = await self._new_writer()
                self.reconnects += 1
                return self._wconn
            except psycopg.OperationalError as exc:
                last = exc
                if attempt + 1 < self._reconnect_attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        raise Unavailable(f"postgres: cannot connect: {last}") from last

    @staticmethod
    async def _configure(conn: AsyncConnection[Any]) -> None:
        set_json_loads(orjson.loads, conn)

    async def _connect(self) -> None:
        try:
            self._wconn = await self._new_writer()
            self._pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self._readers,
                open=False,
                timeout=10,
                kwargs={"autocommit": True, **self._kwargs},
                configure=self._configure,
                name="citybrain-readers",
            )
            await self._pool.open(wait=True, timeout=10)
        except psycopg.OperationalError as exc:
            await self._disconnect()
            raise Unavailable(f"postgres: {exc}") from exc

    async def _disconnect(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._wconn is not None:
            await self._wconn.close()
            self._wconn = None

    async def migrate(self) -> None:
        """Apply pending migrations, serialised across processes by an advisory lock."""
        conn = await self._writer_conn()
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                await cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TEXT)"
                )
                await cur.execute("SELECT version FROM schema_migrations")
                done = {r[0] for r in await cur.fetchall()}
                for version, ddl in POSTGRES_MIGRATIONS:
                    if version not in done:
                        await cur.execute(ddl, prepare=False)
                        await cur.execute(f"INSERT INTO schema_migrations VALUES (%s, {_NOW})", (version,))
            await conn.commit()
        except BaseException:
            if not conn.closed:
                await conn.rollback()
            raise

    async def schema_exists(self, schema: str) -> bool:
        """Tell whether a schema of this name exists in the database."""
        rows = await self._fetch("SELECT 1 FROM pg_namespace WHERE nspname = %s", (check_schema(schema),))
        return bool(rows)

    async def create_schema(self, schema: str) -> None:
        """Create a schema in the database unless it exists (a concurrent creation is fine)."""
        stmt = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(check_schema(schema)))

        async def run(cur: Cur) -> None:
            try:
                await cur.execute(stmt)
            except (pgerrors.UniqueViolation, pgerrors.DuplicateSchema):
                pass  # another process created it between the check and the insert

        await self._read(run)

    async def ping(self) -> None:
        """Run a trivial query."""

        async def run(cur: Cur) -> None:
            await cur.execute("SELECT 1")

        await self._read(run)

    # writing ---------------------------------------------------------------------------------
    async def _commit(self, batches: list[Sequence[Op]]) -> list[BaseException | None]:
        """Commit the group; a deadlock or serialization failure runs it again (pgorder), never reaching callers."""
        attempt = 0
        while True:
            try:
                return await self._commit_once(batches)
            except RETRYABLE as exc:
                attempt += 1
                if attempt > self._retry_attempts:
                    raise Unavailable(f"postgres: still failing after {attempt} attempts: {exc}") from exc
                self.retries += 1
                await pause(attempt)

    async def _commit_once(self, batches: list[Sequence[Op]]) -> list[BaseException | None]:
        conn = await self._writer_conn()
        try:
            return await self._commit_on(conn, batches)
        except BaseException as exc:
            if conn.broken or conn.closed:  # the next commit reconnects
                self._wconn = None
                await conn.close()
            else:
                try:
                    await conn.rollback()
                except psycopg.Error:
                    self._wconn = None
                    await conn.close()
            if isinstance(exc, psycopg.Error) and not isinstance(exc, RETRYABLE):
                raise _as_error(exc) from exc
            raise

    async def _commit_on(
        self, conn: AsyncConnection[tuple[Any, ...]], batches: list[Sequence[Op]]
    ) -> list[BaseException | None]:
        """Run the group in one transaction, first without savepoints (see SqliteStore._commit_sync).

        Besides their cost, many savepoints in one transaction overflow PostgreSQL's subtransaction
        cache, which slows down every other session."""
        failed: dict[int, BaseException] = {}
        while True:
            savepoints = len(failed) >= self._optimistic_failures
            async with conn.cursor() as cur:
                await lock_rows(cur, [ops for i, ops in enumerate(batches) if i not in failed])
                events: list[bytes] = []
                for i, ops in enumerate(batches):
                    if i in failed:
                        continue
                    if savepoints:
                        await cur.execute("SAVEPOINT b")
                    try:
                        observed = observed_keys(ops)
                        for op in ops:
                            await apply_op(cur, op, observed)
                        rows = event_rows(ops)
                    except Exception as exc:
                        if conn.broken or isinstance(exc, RETRYABLE):
                            raise
                        failed[i] = _as_error(exc)
                        if not savepoints:
                            await conn.rollback()
                            break
                        await cur.execute("ROLLBACK TO SAVEPOINT b")
                    else:
                        events += rows
                    if savepoints:
                        await cur.execute("RELEASE SAVEPOINT b")
                else:
                    await append_events(cur, events)
                    await conn.commit()
                    return [failed.get(i) for i in range(len(batches))]
            if len(failed) == len(batches):
                return [failed[i] for i in range(len(batches))]

    # reading ---------------------------------------------------------------------------------
    async def _read(self, fn: Callable[[Cur], Awaitable[T]]) -> T:
        """Run `fn` on a pooled reader; if its connection had been dropped, check the pool and retry once."""
        for attempt in (1, 2):
            if self._pool is None:
                raise Unavailable("store is not open")
            broken = False
            try:
                async with self._pool.connection() as conn:
                    try:
                        async with conn.cursor() as cur:
                            return await fn(cur)
                    finally:
                        broken = conn.broken
            except PoolTimeout as exc:
                raise Unavailable(f"postgres: {exc}") from exc
            except psycopg.OperationalError as exc:
                if attempt == 2 or not broken:
                    raise Unavailable(f"postgres: {exc}") from exc
            await self._pool.check()  # drop the other dead connections too (say, after a server restart)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def run(cur: Cur) -> list[tuple[Any, ...]]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        return await self._read(run)

    async def _entities(self, sql: str, params: Sequence[Any], with_attrs: bool = True) -> list[Entity]:
        async def run(cur: Cur) -> list[Entity]:
            await cur.execute(sql, params)
            entities: dict[str, Entity] = {}
            for r in await cur.fetchall():
                entities[r[0]] = Entity(
                    id=r[0],
                    type=r[1],
                    place=r[2],
                    location=r[3],
                    created_at=r[4] or "",
                    modified_at=r[5] or "",
                    scope=r[6],
                    attrs={},
                )
            if entities and with_attrs:
                await cur.execute(
                    "SELECT entity_id, name, value, observed_at, unit, extra FROM attrs "
                    "WHERE entity_id = ANY(%s::text[]) ORDER BY entity_id, name",
                    (list(entities),),
                )
                for eid, name, value, observed_at, unit, extra in await cur.fetchall():
                    entities[eid].attrs[name] = join_attr(value, observed_at, unit, extra)
            return list(entities.values())

        return await self._read(run)

    async def get_entity(self, entity_id: str) -> Entity | None:
        """Return one entity or None."""
        found = await self._entities(f"SELECT {_ECOLS} FROM entities WHERE id=%s", (entity_id,))
        return found[0] if found else None

    async def get_entities(self, ids: Sequence[str]) -> dict[str, Entity]:
        """Return existing entities among ids."""
        found = await self._entities(
            f"SELECT {_ECOLS} FROM entities WHERE id = ANY(%s::text[])", (list(ids),)
        )
        return {e.id: e for e in found}

    @staticmethod
    def _where(q: EntityQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (("type", q.types), ("id", q.ids), ("place", q.places)):
            if values is not None:
                clauses.append(f"{column} = ANY(%s::text[])")
                params.append(list(values))
        if q.id_pattern:
            clauses.append("id ~ %s")
            params.append(q.id_pattern)
        if q.bbox:
            clauses.append("lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s")
            params += [q.bbox[0], q.bbox[2], q.bbox[1], q.bbox[3]]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def query_entities(self, query: EntityQuery) -> list[Entity]:
        """Return matching entities ordered by id."""
        where, params = self._where(query)
        sql = f"SELECT {_ECOLS} FROM entities{where} ORDER BY id LIMIT %s OFFSET %s"
        return await self._entities(sql, [*params, query.limit, query.offset], query.with_attrs)

    async def count_entities(self, query: EntityQuery) -> int:
        """Count matching entities."""
        where, params = self._where(query)
        return int((await self._fetch(f"SELECT count(*) FROM entities{where}", params))[0][0])

    async def entity_ids(self, types: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """Return (id, type) pairs."""
        if types is None:
            rows = await self._fetch("SELECT id, type FROM entities")
        else:
            rows = await self._fetch(
                "SELECT id, type FROM entities WHERE type = ANY(%s::text[])", (list(types),)
            )
        return [(r[0], r[1]) for r in rows]

    async def entity_types(self) -> dict[str, int]:
        """Return type -> count."""
        rows = await self._fetch("SELECT type, count(*) FROM entities GROUP BY type ORDER BY type")
        return {r[0]: int(r[1]) for r in rows}

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
        clauses = ["entity_id=%s"]
        params: list[Any] = [entity_id]
        for clause, value in (("name=%s", attr), ("observed_at>=%s", since), ("observed_at<%s", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " AND ".join(clauses)
        cols = "entity_id, name, observed_at, value, unit, instance"
        if last_n is not None:
            sql = (
                f"SELECT * FROM (SELECT {cols} FROM history WHERE {where} "
                "ORDER BY observed_at DESC, name DESC, instance DESC "
                "LIMIT %s) h ORDER BY observed_at, name, instance"
            )
            params.append(min(last_n, limit))
        else:
            sql = f"SELECT {cols} FROM history WHERE {where} ORDER BY observed_at, name, instance LIMIT %s"
            params.append(limit)
        return [
            HistoryRow(entity_id=r[0], attr=r[1], observed_at=r[2], value=orjson.loads(r[3]), unit=r[4])
            for r in await self._fetch(sql, params)
        ]

    async def history_count(self, entity_id: str | None = None) -> int:
        """Count history rows."""
        if entity_id is None:
            return int((await self._fetch("SELECT count(*) FROM history"))[0][0])
        return int((await self._fetch("SELECT count(*) FROM history WHERE entity_id=%s", (entity_id,)))[0][0])

    async def events(self, after: int = 0, type_prefix: str | None = None, limit: int = 1000) -> list[Event]:
        """Return events after seq."""
        from citybrain.context import Context

        sql = "SELECT seq, type, time, context, data, id FROM events WHERE seq>%s"
        params: list[Any] = [after]
        if type_prefix:
            sql += " AND starts_with(type, %s)"
            params.append(type_prefix)
        rows = await self._fetch(sql + " ORDER BY seq LIMIT %s", [*params, limit])
        return [
            Event(seq=r[0], type=r[1], time=r[2], context=Context.from_dict(r[3]), data=r[4], id=r[5]) for r in rows
        ]

    async def get_doc(self, collection: str, doc_id: str) -> Doc | None:
        """Return one document."""
        rows = await self._fetch(
            "SELECT data, version, updated_at FROM docs WHERE collection=%s AND id=%s", (collection, doc_id)
        )
        if not rows:
            return None
        r = rows[0]
        return Doc(collection=collection, id=doc_id, data=r[0], version=r[1], updated_at=r[2])

    async def list_docs(
        self, collection: str, where: dict[str, Any] | None = None, limit: int = 1000, offset: int = 0
    ) -> list[Doc]:
        """Return documents whose top-level fields equal `where` (None: missing or null)."""
        clauses = ["collection=%s"]
        params: list[Any] = [collection]
        contains: dict[str, Any] = {}
        for key, value in (where or {}).items():
            if not _FIELD.fullmatch(key):
                raise ValueError(f"bad field name {key!r}")
            if value is None:
                clauses.append("coalesce(data->%s, 'null'::jsonb) = 'null'::jsonb")
                params.append(key)
            else:
                contains[key] = value
        if contains:
            clauses.append("data @> %s::jsonb")
            params.append(dumps(contains))
        sql = (
            f"SELECT id, data, version, updated_at FROM docs WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT %s OFFSET %s"
        )
        rows = await self._fetch(sql, [*params, limit, offset])
        return [Doc(collection=collection, id=r[0], data=r[1], version=r[2], updated_at=r[3]) for r in rows]

    async def count_docs(self, collection: str, by: str) -> dict[str, int]:
        """Count a collection's documents per value of a top-level field (one GROUP BY)."""
        if not _FIELD.fullmatch(by):
            raise ValueError(f"bad field name {by!r}")
        rows = await self._fetch("SELECT data->>%s, count(*) FROM docs WHERE collection=%s GROUP BY 1", (by, collection))
        return {str(k): int(n) for k, n in rows}

    async def deadletters(self, limit: int = 100, include_replayed: bool = False) -> list[DeadLetter]:
        """Return dead letters oldest first."""
        sql = "SELECT seq, time, source, reason, payload, replayed FROM deadletters"
        if not include_replayed:
            sql += " WHERE NOT replayed"
        rows = await self._fetch(sql + " ORDER BY seq LIMIT %s", (limit,))
        return [
            DeadLetter(seq=r[0], time=r[1], source=r[2], reason=r[3], payload=r[4], replayed=r[5])
            for r in rows
        ]

    async def mark_replayed(self, seqs: Sequence[int]) -> None:
        """Mark dead letters replayed (an autocommit statement on a pooled connection)."""

        async def run(cur: Cur) -> None:
            await cur.execute(
                "UPDATE deadletters SET replayed=TRUE WHERE seq = ANY(%s::bigint[])", (list(seqs),)
            )

        await self._read(run)
