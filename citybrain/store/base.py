"""Store port: write operations, read queries, and the single-writer group commit both adapters share.

Every write is a list of operations applied atomically. One writer per node takes whatever batches
are waiting and commits them in one transaction, each batch inside its own savepoint, so that a
failing batch (say, a create of an entity that exists) fails alone while the others commit: the hot
path never commits one row at a time, and a caller is only told "stored" after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import orjson

from citybrain.context import new_id
from citybrain.errors import NotFound, Unavailable, ValidationError
from citybrain.events import Event
from citybrain.model.entity import Attribute, Entity, HistoryRow, ObservationRow


def new_instance() -> str:
    """Return the history instance of one attribute write: a ULID, increasing within a process."""
    return new_id()


class UpsertEntity(msgspec.Struct, tag=True):
    """Create or change an entity. create: fail if it exists; upsert: create or merge attributes;
    replace: keep identity, replace all attributes; update: merge attributes, fail if missing."""

    entity: Entity
    mode: Literal["create", "upsert", "replace", "update"] = "upsert"
    history: bool = True  # record attribute values in history
    instance: str = msgspec.field(default_factory=new_instance)  # the history rows' instance (see SetAttrs)


class DeleteEntity(msgspec.Struct, tag=True):
    """Delete an entity with its state (history is kept). Fails with NotFound if missing."""

    id: str
    missing_ok: bool = False


class SetAttrs(msgspec.Struct, tag=True):
    """Write attributes of an existing entity (NotFound if missing); records history.

    merge "": each given attribute object replaces the stored one. "patch": each is a patch merged into the
    stored object by the writer, inside its transaction (keys replace, None removes, a different type replaces
    the whole object; an absent attribute is created from the patch); "patch_existing": the same, but an
    absent attribute is NotFound. So concurrent patches of one attribute never lose each other's keys.
    instance keys this write's history rows: one per write, so no other write replaces them."""

    entity_id: str
    attrs: dict[str, Attribute]
    modified_at: str
    history: bool = True
    merge: Literal["", "patch", "patch_existing"] = ""
    instance: str = msgspec.field(default_factory=new_instance)


class DeleteAttrs(msgspec.Struct, tag=True):
    """Remove attributes from an entity (NotFound if the entity or an attribute is missing)."""

    entity_id: str
    names: list[str]
    modified_at: str


class WriteObservations(msgspec.Struct, tag=True):
    """Observed values: current state (latest observedAt wins) plus one history row each."""

    rows: list[ObservationRow]


class PutDoc(msgspec.Struct, tag=True):
    """Store a document (case, plan, subscription, grant …) in a collection.

    expect_version: None = unconditional; 0 = must not exist; n = must be at version n (Conflict)."""

    collection: str
    id: str
    data: dict[str, Any]
    expect_version: int | None = None


class DeleteDoc(msgspec.Struct, tag=True):
    """Delete a document (missing is fine)."""

    collection: str
    id: str


class AppendEvent(msgspec.Struct, tag=True):
    """Append an event to the node's event history."""

    event: Event


class AddDeadLetter(msgspec.Struct, tag=True):
    """Keep a message that could not be processed, with the reason."""

    source: str
    reason: str
    payload: str
    time: str


class MarkReplayed(msgspec.Struct, tag=True):
    """Mark dead letters replayed (their message has been stored since)."""

    seqs: list[int]


Op = (UpsertEntity | DeleteEntity | SetAttrs | DeleteAttrs | WriteObservations | PutDoc | DeleteDoc | AppendEvent
      | AddDeadLetter | MarkReplayed)


class EntityQuery(msgspec.Struct, kw_only=True):
    """Which entities to read. All given filters must hold."""

    types: list[str] | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None  # a regular expression
    places: list[str] | None = None  # entity.place in this list
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat (point locations)
    limit: int = 100
    offset: int = 0
    with_attrs: bool = True  # False: identity, type, place and location only (fast map layers)


class Doc(msgspec.Struct, kw_only=True):
    """A stored document with its version."""

    collection: str
    id: str
    data: dict[str, Any]
    version: int
    updated_at: str


class DeadLetter(msgspec.Struct, kw_only=True):
    """A message that was not processed, and why."""

    seq: int
    time: str
    source: str
    reason: str
    payload: str
    replayed: bool = False


def dumps(value: Any) -> str:
    """Encode a JSON value for a text column."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes | None) -> Any:
    """Decode a JSON text column (None stays None)."""
    return None if text is None else orjson.loads(text)


def split_attr(attr: Attribute) -> tuple[str, str | None, str | None, str | None]:
    """Split an NGSI-LD attribute object into (value JSON, observedAt, unitCode, other keys JSON)."""
    value = attr.get("value", attr.get("object", attr.get("languageMap")))
    rest = {k: v for k, v in attr.items() if k not in ("value", "observedAt", "unitCode")}
    if rest == {"type": "Property"}:
        extra = None
    else:
        extra = dumps(rest)
    return dumps(value), attr.get("observedAt"), attr.get("unitCode"), extra


def join_attr(value: str, observed_at: str | None, unit: str | None, extra: str | None) -> Attribute:
    """Rebuild an NGSI-LD attribute object from its stored columns."""
    attr: Attribute = loads(extra) if extra else {"type": "Property"}
    decoded = loads(value)
    kind = attr.get("type")
    if kind == "Relationship":
        attr["object"] = decoded
    elif kind == "LanguageProperty":
        attr["languageMap"] = decoded
    else:
        attr["value"] = decoded
    if observed_at:
        attr["observedAt"] = observed_at
    if unit:
        attr["unitCode"] = unit
    return attr


# the member an attribute object must hold, by attribute type (as model.commands.check_attrs requires)
VALUE_MEMBER = {"Relationship": "object", "ListRelationship": "object", "LanguageProperty": "languageMap"}


def patch_attr(name: str, old: Attribute | None, patch: Attribute) -> Attribute:
    """Merge a SetAttrs patch into a stored attribute object (None: absent) and check the result."""
    if old is None or ("type" in patch and patch["type"] != old.get("type")):
        out: Attribute = {k: v for k, v in patch.items() if v is not None}
    else:
        out = dict(old)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
    kind = out.setdefault("type", "Property")
    member = VALUE_MEMBER.get(kind, "value")
    if out.get(member) is None:
        raise ValidationError(f"{name}: a {kind} needs a non-null {member!r}", field=name)
    return out


def patched(op: SetAttrs, stored: dict[str, Attribute]) -> dict[str, Attribute]:
    """Return the attribute objects a merging SetAttrs writes, given the stored ones it names."""
    out: dict[str, Attribute] = {}
    for name, patch in op.attrs.items():
        old = stored.get(name)
        if old is None and op.merge == "patch_existing":
            raise NotFound(f"attribute {name} not found on {op.entity_id}", field=name)
        out[name] = patch_attr(name, old, patch)
    return out


def observed_keys(ops: Sequence[Op]) -> set[tuple[str, str, str]]:
    """Return the (entity, attribute, observedAt) of every observation a batch records.

    A batch that sets an attribute and records it as an observation (the NGSI-LD temporal write) keeps one
    history row: the observation's, which re-sending the same instance replaces instead of adding to."""
    if not any(isinstance(op, WriteObservations) for op in ops):
        return set()
    return {(r.entity_id, r.attr, r.observed_at) for op in ops if isinstance(op, WriteObservations) for r in op.rows}


def point_of(location: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """Return a representative (lon, lat) of a GeoJSON geometry, for indexing."""
    if not location:
        return None, None
    try:
        if location.get("type") == "Point":
            c = location["coordinates"]
            return float(c[0]), float(c[1])
        from shapely.geometry import shape

        p = shape(location).representative_point()
        return float(p.x), float(p.y)
    except Exception:
        return None, None


class Store(ABC):
    """The store contract. Adapters implement _commit and the readers; batching is shared."""

    url: str

    def __init__(self, max_batches: int = 256) -> None:
        self._max_batches = max_batches
        self._queue: asyncio.Queue[tuple[Sequence[Op], asyncio.Future[None]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0

    # lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, migrate the schema and start the writer."""
        await self._connect()
        await self.migrate()
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name=f"store-writer-{type(self).__name__}")

    async def close(self) -> None:
        """Finish pending writes, stop the writer and disconnect."""
        if self._writer is not None and self._queue is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        self._queue = None  # apply() after close raises Unavailable instead of waiting forever
        await self._disconnect()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # writing ---------------------------------------------------------------------------------
    async def apply(self, ops: Sequence[Op]) -> None:
        """Apply `ops` atomically; return once they are durably committed (or raise why not)."""
        if self._queue is None:
            raise Unavailable("store is not open")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((ops, fut))
        await fut

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            first = await queue.get()
            batches = [first]
            while len(batches) < self._max_batches and not queue.empty():
                batches.append(queue.get_nowait())
            try:
                results = await self._commit([ops for ops, _ in batches])
            except Exception as exc:  # the whole transaction failed: nobody's batch is stored
                results = [exc] * len(batches)
            self.commits += 1
            for (_, fut), result in zip(batches, results, strict=True):
                if not fut.done():
                    if result is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(result)
                queue.task_done()

    @property
    def pending(self) -> int:
        """Number of write batches waiting for the writer."""
        return 0 if self._queue is None else self._queue.qsize()

    # adapter hooks ---------------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to the latest version (idempotent)."""

    @abstractmethod
    async def _commit(self, batches: list[Sequence[Op]]) -> list[BaseException | None]:
        """Apply each batch in its own savepoint of one transaction; return per-batch errors."""

    # reading ---------------------------------------------------------------------------------
    @abstractmethod
    async def get_entity(self, entity_id: str) -> Entity | None:
        """Return an entity with all its current attributes, or None."""

    @abstractmethod
    async def get_entities(self, ids: Sequence[str]) -> dict[str, Entity]:
        """Return the entities among `ids` that exist, by id."""

    @abstractmethod
    async def query_entities(self, query: EntityQuery) -> list[Entity]:
        """Return entities matching `query`, ordered by id."""

    @abstractmethod
    async def count_entities(self, query: EntityQuery) -> int:
        """Count entities matching `query` (ignoring limit/offset)."""

    @abstractmethod
    async def entity_ids(self, types: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """Return (id, type) of every entity, optionally only of `types`."""

    @abstractmethod
    async def entity_types(self) -> dict[str, int]:
        """Return each entity type with its entity count."""

    @abstractmethod
    async def history(
        self,
        entity_id: str,
        attr: str | None = None,
        since: str | None = None,
        until: str | None = None,
        last_n: int | None = None,
        limit: int = 10000,
    ) -> list[HistoryRow]:
        """Return stored past values, oldest first (last_n: the newest n, still oldest first)."""

    @abstractmethod
    async def history_count(self, entity_id: str | None = None) -> int:
        """Count history rows (of one entity, or all)."""

    @abstractmethod
    async def events(self, after: int = 0, type_prefix: str | None = None, limit: int = 1000) -> list[Event]:
        """Return events with seq > `after`, oldest first."""

    @abstractmethod
    async def get_doc(self, collection: str, doc_id: str) -> Doc | None:
        """Return one document, or None."""

    @abstractmethod
    async def list_docs(
        self, collection: str, where: dict[str, Any] | None = None, limit: int = 1000, offset: int = 0
    ) -> list[Doc]:
        """Return documents of a collection whose top-level fields equal `where`, ordered by id."""

    async def count_docs(self, collection: str, by: str) -> dict[str, int]:
        """Return how many documents of a collection hold each value of the top-level field `by`.

        Adapters answer with one GROUP BY; this fallback pages through list_docs."""
        out: dict[str, int] = {}
        offset = 0
        while True:
            page = await self.list_docs(collection, limit=1000, offset=offset)
            for doc in page:
                key = str(doc.data.get(by))
                out[key] = out.get(key, 0) + 1
            if len(page) < 1000:
                return out
            offset += 1000

    @abstractmethod
    async def deadletters(self, limit: int = 100, include_replayed: bool = False) -> list[DeadLetter]:
        """Return dead letters, oldest first."""

    @abstractmethod
    async def mark_replayed(self, seqs: Sequence[int]) -> None:
        """Mark dead letters as replayed."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise Unavailable if the database cannot be reached."""
