"""The live situation of every place, updated from the partitioned observation stream (cb.obs.<n>).

For each place (grid cell, community, subdistrict, district, city): the latest value per observed
quantity, rolling statistics over configurable windows, data freshness and sensing coverage. It also
runs the observation pipeline: after updating the situation it hands the located rows to its listeners
(rules, detectors, risk, alerts) in order, so every part sees the same observation once.

State is kept only for the lowest place an observation lies in (its grid cell: the leaf), in the pipeline
partition of the cell's community (`situation.partitions`), and every place above is the exact merge of
its leaves (`situation.view`). A process answers from the leaves of the partitions it owns and, for the
others, from the snapshots their owners publish in the store at most every `situation_throttle` (1 s), so
every process gives the same answer once the last change is a throttle period (plus one for its read
cache) old.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from citybrain.bus import Message
from citybrain.clock import epoch, parse_duration
from citybrain.model.entity import ObservationRow
from citybrain.obs import Located
from citybrain.situation.partitions import Pipeline
from citybrain.situation.stats import PlaceState, Quantity, merge_states, state_from_plain, state_to_plain
from citybrain.situation.view import LEVEL_NAMES, View
from citybrain.windows import numeric

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

__all__ = ["LEVEL_NAMES", "Located", "Situation", "View", "setup"]

DEFAULT_WINDOWS = {"1h": 3600.0, "24h": 86400.0}
_encode = msgspec.msgpack.Encoder()
_decode = msgspec.msgpack.Decoder()


Listener = Callable[[list[Located]], Awaitable[None]]


class Situation:
    """Leaf states per partition, in memory; changed places pushed on cb.situation.<level> once per throttle."""

    name = "situation"

    def __init__(self, rt: CityBrain, windows: dict[str, float] | None = None, live: float = 7200.0,
                 throttle: float = 1.0) -> None:
        self.rt = rt
        self.windows = windows or dict(DEFAULT_WINDOWS)
        self.live = live
        self.throttle = throttle
        self.leaves: dict[int, dict[str, PlaceState]] = {}  # partition -> leaf place -> state
        self.counts: dict[int, int] = {}  # partition -> observations taken
        self.listeners: list[Listener] = []
        self.observations = 0  # taken by this process (the node's total: view().observations)
        self.pipeline: Pipeline | None = None
        self._cells: dict[str, str | None] = {}  # entity -> grid cell ("" = none)
        self._areas: dict[str, dict[str, str]] = {}
        self._parts: dict[str, int] = {}  # grid cell -> partition
        self._dirty: set[str] = set()  # leaves changed since the last push

    # locating --------------------------------------------------------------------------------
    def areas_of(self, cell: str) -> dict[str, str]:
        """Return the places a grid cell lies in, by level name (grid, community, …, city), lowest first."""
        got = self._areas.get(cell)
        if got is None:
            places = self.rt.ports.places
            got = {}
            for pid in [cell, *places.ancestors(cell)]:
                p = places.get(pid)
                if p is not None and p.type in LEVEL_NAMES:
                    got[LEVEL_NAMES[p.type]] = pid
            self._areas[cell] = got
        return got

    def part_of_cell(self, cell: str) -> int:
        """Return the partition of a grid cell (that of its community; the one ingest publishes it on)."""
        got = self._parts.get(cell)
        if got is None:
            got = self._parts[cell] = self.rt.cluster.partition_of(self.areas_of(cell).get("community"))
        return got

    async def home(self, row: ObservationRow) -> int:
        """Return the partition a row belongs to (its sensor's cell's community's)."""
        cell = self._cells.get(row.entity_id)
        if cell is None:
            cell = await self.cell_of(row.entity_id) or ""
        return self.part_of_cell(cell) if cell else 0

    def part_of_entity(self, entity_id: str) -> int:
        """Return the partition of an entity already seen by the pipeline (0 if it was not)."""
        cell = self._cells.get(entity_id)
        return self.part_of_cell(cell) if cell else 0

    async def cell_of(self, entity_id: str) -> str | None:
        """Return the grid cell of an entity (in memory after the first look-up)."""
        cell = self._cells.get(entity_id)
        if cell is not None:
            return cell or None
        places = self.rt.ports.places
        p = places.get(entity_id)
        if p is not None:
            found: str | None = entity_id if p.type == "Grid" else None
        else:
            found = self.rt.ports.directory.places.get(entity_id)
            if found is None:
                entity = await self.rt.store.get_entity(entity_id)
                found = entity.place if entity is not None else None
        self._cells[entity_id] = found or ""
        return found

    def forget(self, entity_id: str) -> None:
        """Drop a cached location (the entity moved or was deleted)."""
        self._cells.pop(entity_id, None)
        self._areas.clear()
        self._parts.clear()
        if self.pipeline is not None:
            self.pipeline.forget_places()

    # updating --------------------------------------------------------------------------------
    async def take(self, rows: list[ObservationRow]) -> list[Located]:
        """Update the situation with rows and pass them through the pipeline."""
        located: list[Located] = []
        parts: set[int] = set()
        for row in rows:
            cell = self._cells.get(row.entity_id)
            if cell is None:
                cell = await self.cell_of(row.entity_id) or ""
            if cell:
                areas = self.areas_of(cell)
                part = self._parts.get(cell)
                if part is None:
                    part = self.part_of_cell(cell)
            else:
                areas, part = {}, 0
            item = Located(row, epoch(row.observed_at), numeric(row.value), areas, part)
            located.append(item)
            if item.value is not None and areas:
                self._update(item)
                parts.add(part)
        self.observations += len(rows)
        for listener in self.listeners:
            await listener(located)
        if parts and self.pipeline is not None:
            for n in parts:
                held = self.pipeline.parts.get(n)
                if held is not None:
                    held.dirty = held.changed = True
        return located

    def _update(self, item: Located) -> None:
        row = item.row
        value = item.value
        assert value is not None
        level, pid = next(iter(item.areas.items()))  # the leaf: the lowest place (areas are lowest first)
        leaves = self.leaves.get(item.part)
        if leaves is None:
            leaves = self.leaves[item.part] = {}
        state = leaves.get(pid)
        if state is None:
            state = leaves[pid] = PlaceState(pid, level)
        q = state.quantities.get(row.attr)
        if q is None:
            q = state.quantities[row.attr] = Quantity(self.windows)
        q.add(row.entity_id, item.ts, value)
        if item.ts > state.last_ts:
            state.last_ts = item.ts
        state.observations += 1
        self.counts[item.part] = self.counts.get(item.part, 0) + 1
        self._dirty.add(pid)

    # partition state (citybrain.situation.partitions) ----------------------------------------
    def capture(self, n: int) -> Any:
        """Return partition n's leaves and count (for its checkpoint)."""
        return {"leaves": self.leaves.get(n, {}), "count": self.counts.get(n, 0)}

    def restore(self, n: int, state: Any) -> None:
        """Take partition n's leaves back from a checkpoint."""
        self.leaves[n] = dict(state["leaves"])
        self.counts[n] = int(state["count"])

    def drop(self, n: int) -> None:
        """Forget partition n's leaves."""
        self.leaves.pop(n, None)
        self.counts.pop(n, None)

    def publish(self, n: int) -> Any:
        """Return partition n's leaves as published for the other processes (msgpack, base64)."""
        leaves = self.leaves.get(n, {})
        body = {"count": self.counts.get(n, 0), "leaves": {pid: state_to_plain(s) for pid, s in leaves.items()}}
        return base64.b64encode(_encode.encode(body)).decode()

    def load(self, data: Any) -> Any:
        """Decode a published snapshot into (count, leaves)."""
        body = _decode.decode(base64.b64decode(data))
        return int(body["count"]), {pid: state_from_plain(pid, plain) for pid, plain in body["leaves"].items()}

    # reading ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Return the runtime clock as epoch seconds."""
        return self.rt.clock.now().timestamp()

    def _view(self, others: dict[int, Any]) -> View:
        leaves: dict[str, PlaceState] = {}
        count = 0
        sources: list[tuple[int, dict[str, PlaceState]]] = [(n, ls) for n, ls in self.leaves.items()]
        for n, pub in others.items():
            got = pub.parts.get(self.name)
            if got is not None:
                count += got[0]
                sources.append((n, got[1]))
        count += sum(self.counts.values())
        for _, part_leaves in sorted(sources, key=lambda s: s[0]):
            for pid, state in part_leaves.items():
                held = leaves.get(pid)
                # a leaf in two partitions only if its community changed; its figures are the sum of both
                leaves[pid] = state if held is None else merge_states(pid, state.level, [held, state], self.windows)
        return View(self.rt.ports.places, leaves, count, self.windows, self.live)

    def local_view(self) -> View:
        """Return the view of this process: its partitions' live leaves and the others' last read snapshots."""
        others = self.pipeline.others if self.pipeline is not None else {}
        return self._view({n: p for n, p in others.items() if n not in self.leaves})

    async def view(self) -> View:
        """Return the node-wide view: owned partitions live, the others from their snapshots (≤ throttle old)."""
        others = await self.pipeline.read_others() if self.pipeline is not None else {}
        return self._view({n: p for n, p in others.items() if n not in self.leaves})

    def summary(self, place_id: str, brief: bool = False) -> dict[str, Any]:
        """Return the situation of a place: quantities, freshness and coverage."""
        return self.local_view().summary(place_id, self.now(), brief)

    async def push(self) -> None:
        """Publish the changed places (their leaves and every place above) on cb.situation.<level>."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        places = self.rt.ports.places
        ids = set(dirty)
        for pid in dirty:
            ids.update(places.ancestors(pid))
        view = await self.view()
        now = self.now()
        for pid in sorted(ids):
            state = view.state(pid)
            if state is not None:
                await self.rt.bus.publish(f"cb.situation.{state.level}", orjson.dumps(view.summary(pid, now, True)))


async def setup(rt: CityBrain) -> None:
    """Create the situation service and its partitioned pipeline; partitions are taken on the cluster's leases."""
    extra = rt.settings.extra
    windows = {k: s for k, v in dict(extra.get("situation_windows", {})).items()
               if (s := parse_duration(v)) is not None} or None
    throttle = float(extra.get("situation_throttle", 1.0))
    situation = Situation(rt, windows, float(parse_duration(extra.get("situation_live", "2h")) or 7200.0), throttle)
    # the journal makes a crash lose nothing of the live windows, on one process restarted on its store too
    journal = bool(extra.get("pipeline_journal", True))
    pipeline = Pipeline(rt, situation.take, throttle,
                        float(parse_duration(extra.get("pipeline_checkpoint", 2.0)) or 2.0), situation.home, journal)
    situation.pipeline = pipeline
    pipeline.register(situation)
    pipeline.publish_with(situation)
    pipeline.after_publish.append(situation.push)
    rt.ports.situation = situation
    rt.ports.pipeline = pipeline
    rt.cluster.on_partitions(pipeline.acquire, pipeline.release)  # acquired in rt.start(), after every setup
    rt.spawn(pipeline.keep(), name="pipeline")

    async def moved(msg: Message) -> None:
        data = orjson.loads(msg.data).get("data", {})
        if data.get("id"):
            situation.forget(str(data["id"]))

    await rt.bus.subscribe("cb.event.command.entity.write", moved)
    await rt.bus.subscribe("cb.event.command.entity.delete", moved)
