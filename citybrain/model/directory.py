"""Which entities exist, by id → type and place, in memory on every process of a node.

A node is several processes on one store. Each process keeps this directory current from the entity
command events of every process (`cb.event.command.entity.>`, a fan-out subscription: every process sees
every event) and reads through to the store on a miss, so an entity another process created a moment ago
is found before its event arrives. The store stays the authority: commands still fail atomically there
(a create of an existing id, an update of a deleted one), the directory only saves the reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from citybrain.events import decode_event
from citybrain.model.types import PLACE_LEVELS
from citybrain.store import EntityQuery

if TYPE_CHECKING:
    from citybrain.bus import Message
    from citybrain.model.entity import Entity
    from citybrain.model.places import PlaceIndex
    from citybrain.store import Store

ENTITY_EVENTS = "cb.event.command.entity.>"
_KEEP = 20_000  # recent removals and commands run here that are remembered (bounded memory)
_READ = 5_000  # ids per store read (SQLite caps the parameters of one statement)


class Directory:
    """Entity id → type (every entity) and → place (the grid cell, or a place's parent; where known).

    The ingest path checks sensors in `types`, in memory; `resolve` looks the ids it does not know up in
    the store in one read. A place missing from `places` is not known yet (entities loaded at start)."""

    def __init__(self, store: Store, places: PlaceIndex) -> None:
        self.store = store
        self.place_index = places
        self.types: dict[str, str] = {}
        self.places: dict[str, str | None] = {}
        self._removals = 0
        # id → removal number: a store read that started before a removal must not bring the id back
        self._removed: OrderedDict[str, int] = OrderedDict()
        # context ids of commands run here → their events still to come back from the bus (skipped: this
        # process applied them at commit, and replaying an old create after a later delete would revive it)
        self._local: OrderedDict[str, int] = OrderedDict()

    def add(self, entity_id: str, entity_type: str, place: str | None) -> None:
        """Remember an entity (place None: not known, looked up when needed)."""
        self.types[entity_id] = entity_type
        if place is None:
            self.places.pop(entity_id, None)
        else:
            self.places[entity_id] = place

    def remove(self, entity_id: str) -> None:
        """Forget an entity."""
        self.types.pop(entity_id, None)
        self.places.pop(entity_id, None)
        self._removals += 1
        self._removed[entity_id] = self._removals
        self._removed.move_to_end(entity_id)
        if len(self._removed) > _KEEP:
            self._removed.popitem(last=False)

    def ran_here(self, context_id: str) -> None:
        """Note that a command with this context was applied here at commit (its event is then skipped)."""
        self._local[context_id] = self._local.get(context_id, 0) + 1
        if len(self._local) > _KEEP:
            self._local.popitem(last=False)

    def _was_local(self, context_id: str) -> bool:
        left = self._local.get(context_id)
        if left is None:
            return False
        if left <= 1:
            del self._local[context_id]
        else:
            self._local[context_id] = left - 1
        return True

    # read-through -------------------------------------------------------------------------------
    async def resolve(self, ids: Iterable[str], *, places: bool = False) -> None:
        """Look up, in one store read, the ids not known here (with `places`, also those whose place is not)."""
        types, known = self.types, self.places
        missing = list(dict.fromkeys(i for i in ids if i not in types or (places and i not in known)))
        await self._fetch(missing)

    async def existing(self, ids: Iterable[str]) -> set[str]:
        """Return which of the ids exist now, asking the store (one read) whatever memory says."""
        return {e.id for e in await self._fetch(list(dict.fromkeys(ids)))}

    async def _fetch(self, ids: list[str]) -> list[Entity]:
        """Read the identity rows of `ids` (one store read) and remember what was found."""
        if not ids:
            return []
        start = self._removals
        found: list[Entity] = []
        for i in range(0, len(ids), _READ):
            chunk = ids[i:i + _READ]
            found += await self.store.query_entities(EntityQuery(ids=chunk, with_attrs=False, limit=len(chunk)))
        for e in found:
            if self._removed.get(e.id, 0) <= start:  # not deleted while we were reading
                self.types[e.id] = e.type
                self.places[e.id] = e.place
        return found

    async def type_of(self, entity_id: str) -> str | None:
        """Return the type of an entity, from memory or else from the store; None if it does not exist."""
        found = self.types.get(entity_id)
        if found is None:
            await self.resolve([entity_id])
            found = self.types.get(entity_id)
        return found

    async def found(self, ids: Iterable[str]) -> bool:
        """Read the given unknown ids through to the store; tell whether any of them exists."""
        ids = [i for i in ids if i not in self.types]
        await self.resolve(ids)
        return any(i in self.types for i in ids)

    async def load_places(self, place_ids: Iterable[str | None]) -> None:
        """Make sure the place index holds these places if they exist (another process may have just made them)."""
        index = self.place_index
        missing = [p for p in dict.fromkeys(place_ids) if p is not None and p not in index]
        if not missing:
            return
        start = self._removals
        for entity in (await self.store.get_entities(missing)).values():
            if entity.type in PLACE_LEVELS and self._removed.get(entity.id, 0) <= start:
                index.add(entity)
                self.add(entity.id, entity.type, entity.place)

    async def refresh_places(self, place_ids: Iterable[str]) -> None:
        """Reload places from the store into the place index (they changed on some process)."""
        ids = list(dict.fromkeys(place_ids))
        if not ids:
            return
        found = await self.store.get_entities(ids)
        for pid in ids:
            entity = found.get(pid)
            if entity is not None and entity.type in PLACE_LEVELS:
                self.place_index.add(entity)
            else:
                self.place_index.remove(pid)

    # events ----------------------------------------------------------------------------------------
    async def on_event(self, msg: Message) -> None:
        """Apply an entity command event of any process (cb.event.command.entity.*)."""
        event = decode_event(msg.data)
        if self._was_local(event.context.id):
            return
        await self.apply(event.type.removeprefix("command."), event.data)

    async def apply(self, command: str, data: dict[str, Any]) -> None:
        """Bring the directory and the place index up to date with one entity command's event data."""
        index = self.place_index
        changed_places: list[str] = []
        if command == "entity.write":
            self.add(data["id"], data["type"], data.get("place"))
            if data["type"] in PLACE_LEVELS:
                changed_places.append(data["id"])
        elif command == "entity.write_many":
            # the event names the ids only (a batch can be large): their types and places come from the store
            found = await self._fetch([i for i in data.get("ids", ()) if isinstance(i, str)])
            changed_places += [e.id for e in found if e.type in PLACE_LEVELS]
        elif command == "entity.temporal_write":
            if data.get("created") and data.get("type"):
                self.add(data["id"], data["type"], data.get("place"))
            if data.get("id") in index or data.get("type") in PLACE_LEVELS:
                changed_places.append(data["id"])
        elif command in ("entity.update", "entity.delete_attrs"):
            if data.get("id") in index:
                changed_places.append(data["id"])
        elif command in ("entity.delete", "entity.delete_many"):
            gone = data.get("ids") or ([data["id"]] if isinstance(data.get("id"), str) else [])
            for eid in gone:
                self.remove(eid)
                index.remove(eid)
        await self.refresh_places(changed_places)

    async def load(self) -> None:
        """Fill the place index and the directory from the store (call it after subscribing to the events,
        so that nothing another process does meanwhile is missed; what the events brought is kept)."""
        start = self._removals
        index = self.place_index
        page, offset = 5000, 0
        while True:
            batch = await self.store.query_entities(EntityQuery(types=list(PLACE_LEVELS), limit=page, offset=offset))
            for p in batch:
                if p.id not in index and self._removed.get(p.id, 0) <= start:
                    index.add(p, rebuild=False)
            if len(batch) < page:
                break
            offset += page
        offset = 0
        while True:  # identity rows only (no attributes): every entity's type and place
            rows = await self.store.query_entities(EntityQuery(limit=page, offset=offset, with_attrs=False))
            for e in rows:
                if e.id not in self.types and self._removed.get(e.id, 0) <= start:
                    self.types[e.id] = e.type
                    self.places[e.id] = e.place
            if len(rows) < page:
                break
            offset += page
