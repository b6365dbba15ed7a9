"""The live situation of every place, updated from the observation stream (bus subject cb.obs).

For each place (grid cell, community, subdistrict, district, city): the latest value per observed
quantity, rolling statistics over configurable windows, data freshness and sensing coverage. It also
runs the observation pipeline: after updating the situation it hands the located rows to its listeners
(rules, detectors, risk, alerts) in order, so every part sees the same observation once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.bus import Message
from citybrain.ingest.observations import OBS_SUBJECT, decode_rows
from citybrain.model.entity import ObservationRow
from citybrain.rules.spec import parse_duration
from citybrain.situation.stats import PlaceState, Quantity, epoch, numeric

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

LEVEL_NAMES = {"Grid": "grid", "Community": "community", "Subdistrict": "subdistrict", "District": "district",
               "City": "city"}
DEFAULT_WINDOWS = {"1h": 3600.0, "24h": 86400.0}


class Located:
    """One observation with its time, numeric value and the places it lies in (level → place id)."""

    __slots__ = ("row", "ts", "value", "areas")

    def __init__(self, row: ObservationRow, ts: float, value: float | None, areas: dict[str, str]) -> None:
        self.row, self.ts, self.value, self.areas = row, ts, value, areas


Listener = Callable[[list[Located]], Awaitable[None]]


class Situation:
    """Per-place live state, kept in memory; pushed on cb.situation.<level> at most once per throttle period."""

    def __init__(self, rt: CityBrain, windows: dict[str, float] | None = None, live: float = 7200.0,
                 throttle: float = 1.0) -> None:
        self.rt = rt
        self.windows = windows or dict(DEFAULT_WINDOWS)
        self.live = live
        self.throttle = throttle
        self.states: dict[str, PlaceState] = {}
        self.listeners: list[Listener] = []
        self.observations = 0
        self._cells: dict[str, str | None] = {}  # entity -> grid cell ("" = none)
        self._areas: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None

    # locating --------------------------------------------------------------------------------
    def areas_of(self, cell: str) -> dict[str, str]:
        """Return the places a grid cell lies in, by level name (grid, community, …, city)."""
        got = self._areas.get(cell)
        if got is None:
            places = self.rt.services["places"]
            got = {}
            for pid in [cell, *places.ancestors(cell)]:
                p = places.get(pid)
                if p is not None and p.type in LEVEL_NAMES:
                    got[LEVEL_NAMES[p.type]] = pid
            self._areas[cell] = got
        return got

    async def cell_of(self, entity_id: str) -> str | None:
        """Return the grid cell of an entity (in memory after the first look-up)."""
        cell = self._cells.get(entity_id)
        if cell is not None:
            return cell or None
        places = self.rt.services["places"]
        p = places.get(entity_id)
        if p is not None:
            found: str | None = entity_id if p.type == "Grid" else None
        else:
            found = self.rt.services["directory"].places.get(entity_id)
            if found is None:
                entity = await self.rt.store.get_entity(entity_id)
                found = entity.place if entity is not None else None
        self._cells[entity_id] = found or ""
        return found

    def forget(self, entity_id: str) -> None:
        """Drop a cached location (the entity moved or was deleted)."""
        self._cells.pop(entity_id, None)
        self._areas.clear()

    # updating --------------------------------------------------------------------------------
    async def on_message(self, msg: Message) -> None:
        """Handle one cb.obs batch: locate, update, then run the listeners."""
        await self.take(decode_rows(msg.data))

    async def take(self, rows: list[ObservationRow]) -> list[Located]:
        """Update the situation with rows and pass them through the pipeline."""
        located: list[Located] = []
        for row in rows:
            cell = self._cells.get(row.entity_id)
            if cell is None:
                cell = await self.cell_of(row.entity_id) or ""
            areas = self.areas_of(cell) if cell else {}
            item = Located(row, epoch(row.observed_at), numeric(row.value), areas)
            located.append(item)
            if item.value is not None:
                self._update(item)
        self.observations += len(rows)
        for listener in self.listeners:
            await listener(located)
        if self._dirty and self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.throttle, self._schedule_push)
        return located

    def _update(self, item: Located) -> None:
        row = item.row
        value = item.value
        assert value is not None
        for level, pid in item.areas.items():
            state = self.states.get(pid)
            if state is None:
                state = self.states[pid] = PlaceState(pid, level)
            q = state.quantities.get(row.attr)
            if q is None:
                q = state.quantities[row.attr] = Quantity(self.windows)
            q.add(row.entity_id, item.ts, value)
            if item.ts > state.last_ts:
                state.last_ts = item.ts
            state.observations += 1
            self._dirty.add(pid)

    def _schedule_push(self) -> None:
        self._flush = None
        self.rt.spawn(self.push(), name="situation-push")

    async def push(self) -> None:
        """Publish the changed places on cb.situation.<level>."""
        dirty, self._dirty = self._dirty, set()
        for pid in sorted(dirty):
            state = self.states.get(pid)
            if state is not None:
                await self.rt.bus.publish(f"cb.situation.{state.level}", orjson.dumps(self.summary(pid, brief=True)))

    # reading ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Return the runtime clock as epoch seconds."""
        return self.rt.clock.now().timestamp()

    def summary(self, place_id: str, brief: bool = False) -> dict[str, Any]:
        """Return the situation of a place: quantities, freshness and coverage."""
        places = self.rt.services["places"]
        now = self.now()
        state = self.states.get(place_id)
        p = places.get(place_id)
        cells = places.cells_of(place_id)
        live = [c for c in cells if (s := self.states.get(c)) is not None and now - s.last_ts <= self.live]
        out: dict[str, Any] = {
            "place": place_id, "type": p.type if p is not None else None,
            "freshness": {"last_observed_s_ago": round(now - state.last_ts, 1) if state and state.last_ts else None,
                          "live_within_s": self.live},
            "coverage": {"cells": len(cells), "live_cells": len(live),
                         "share": round(len(live) / len(cells), 3) if cells else 0.0},
            "observations": state.observations if state else 0,
            "quantities": {},
        }
        if state is not None:
            for name, q in sorted(state.quantities.items()):
                info = q.summary(now, self.live)
                out["quantities"][name] = {"latest": info["latest"], "age_s": info["age_s"]} if brief else info
        if not brief:
            out["live_cell_ids"] = live[:500]
        return out


async def setup(rt: CityBrain) -> None:
    """Create the situation service and subscribe it to the observation stream."""
    extra = rt.settings.extra
    windows = {k: s for k, v in dict(extra.get("situation_windows", {})).items()
               if (s := parse_duration(v)) is not None} or None
    situation = Situation(rt, windows, float(parse_duration(extra.get("situation_live", "2h")) or 7200.0),
                          float(extra.get("situation_throttle", 1.0)))
    rt.services["situation"] = situation
    await rt.bus.subscribe(OBS_SUBJECT, situation.on_message, durable="situation")

    async def moved(msg: Message) -> None:
        data = orjson.loads(msg.data).get("data", {})
        if data.get("id"):
            situation.forget(str(data["id"]))

    await rt.bus.subscribe("cb.event.command.entity.write", moved)
    await rt.bus.subscribe("cb.event.command.entity.delete", moved)
