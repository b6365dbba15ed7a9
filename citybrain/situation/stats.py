"""Rolling statistics in constant memory, and the live state of one place.

Every piece is exactly mergeable: the buckets of two Rolling windows of the same span line up (a bucket
starts at ts - ts % width), per-sensor latest values are a union, counts add up and the latest value is the
newest. The situation of a place above a grid cell is the merge of its cells' states (`merge_states`), which is
how partitions that each hold some of a district's cells answer for the whole district.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from citybrain.clock import iso_of
from citybrain.windows import Rolling, merge_rolling


class Quantity:
    """One observed quantity in one place: latest value, latest per sensor, rolling windows."""

    __slots__ = ("value", "ts", "entity", "sensors", "windows")

    def __init__(self, windows: dict[str, float]) -> None:
        self.value = 0.0
        self.ts = 0.0
        self.entity = ""
        self.sensors: dict[str, tuple[float, float]] = {}
        self.windows = {name: Rolling(span) for name, span in windows.items()}

    def add(self, entity: str, ts: float, value: float) -> None:
        """Take one observation."""
        if ts >= self.ts:
            self.value, self.ts, self.entity = value, ts, entity
        old = self.sensors.get(entity)
        if old is None or ts >= old[0]:
            self.sensors[entity] = (ts, value)
        for w in self.windows.values():
            w.add(ts, value)

    def summary(self, now: float, live: float) -> dict[str, Any]:
        """Return the latest value, the mean/max across sensors and each window's mean and max."""
        live_values = [v for ts, v in self.sensors.values() if now - ts <= live]
        out: dict[str, Any] = {"latest": self.value, "observedAt": iso_of(self.ts),
                               "entity": self.entity, "sensors": len(self.sensors), "live_sensors": len(live_values),
                               "age_s": round(max(0.0, now - self.ts), 1)}
        if live_values:
            out["mean_now"] = round(sum(live_values) / len(live_values), 3)
            out["max_now"] = max(live_values)
        for name, w in self.windows.items():
            n, total, hi, lo = w.stats(self.ts)
            if n:
                out[name] = {"mean": round(total / n, 3), "max": hi, "min": lo, "n": n}
        return out


class PlaceState:
    """The live situation of one place."""

    __slots__ = ("id", "level", "quantities", "last_ts", "observations")

    def __init__(self, place_id: str, level: str) -> None:
        self.id = place_id
        self.level = level
        self.quantities: dict[str, Quantity] = {}
        self.last_ts = 0.0
        self.observations = 0


def merge_quantity(into: Quantity, other: Quantity) -> None:
    """Add another place's (or partition's) quantity to `into`."""
    # ties go to the larger entity id so that every process merging the same states picks the same latest
    if other.ts > into.ts or (other.ts == into.ts and other.entity > into.entity):
        into.value, into.ts, into.entity = other.value, other.ts, other.entity
    for entity, seen in other.sensors.items():
        old = into.sensors.get(entity)
        if old is None or seen[0] >= old[0]:
            into.sensors[entity] = seen
    for name, roll in other.windows.items():
        mine = into.windows.get(name)
        if mine is not None and mine.span == roll.span:
            merge_rolling(mine, roll)


def merge_states(place_id: str, level: str, states: list[PlaceState], windows: dict[str, float]) -> PlaceState:
    """Return the state of a place made of the given states (its cells'), leaving them unchanged."""
    out = PlaceState(place_id, level)
    for state in states:
        out.observations += state.observations
        if state.last_ts > out.last_ts:
            out.last_ts = state.last_ts
        for name, q in state.quantities.items():
            mine = out.quantities.get(name)
            if mine is None:
                mine = out.quantities[name] = Quantity(windows)
                mine.ts = -1.0  # so that the first merged quantity sets the latest value, even at ts 0
            merge_quantity(mine, q)
    return out


def state_to_plain(state: PlaceState) -> list[Any]:
    """Return a place state as plain lists and dicts (for a published snapshot)."""
    return [state.level, state.observations, state.last_ts,
            {name: [q.value, q.ts, q.entity, {e: [t, v] for e, (t, v) in q.sensors.items()},
                    {w: [r.span, [list(b) for b in r.buckets]] for w, r in q.windows.items()}]
             for name, q in state.quantities.items()}]


def state_from_plain(place_id: str, data: list[Any]) -> PlaceState:
    """Rebuild a place state from `state_to_plain` output."""
    level, observations, last_ts, quantities = data
    state = PlaceState(place_id, level)
    state.observations, state.last_ts = int(observations), float(last_ts)
    for name, (value, ts, entity, sensors, windows) in quantities.items():
        q = Quantity({w: float(span) for w, (span, _) in windows.items()})
        q.value, q.ts, q.entity = value, float(ts), entity
        q.sensors = {e: (float(t), float(v)) for e, (t, v) in sensors.items()}
        for w, (_, buckets) in windows.items():
            q.windows[w].buckets = deque([float(x) for x in b] for b in buckets)
        state.quantities[name] = q
    return state
