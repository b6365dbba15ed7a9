"""The situation of every place, read from the leaf states (grid cells) that the partitions hold.

The pipeline keeps state only for the lowest place each observation lies in (its grid cell), in the
partition of the cell's community. Every place above is answered by merging the leaves inside it
(`merge_states`, exact), so a district whose cells are spread over several partitions, and over several
processes, gets the same figures as if one process had seen every observation. A `View` is read-only and
merges lazily, once per place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citybrain.situation.stats import PlaceState, merge_states

if TYPE_CHECKING:
    from citybrain.model.places import PlaceIndex

LEVEL_NAMES = {"Grid": "grid", "Community": "community", "Subdistrict": "subdistrict", "District": "district",
               "City": "city"}
LEVEL_TYPES = {v: k for k, v in LEVEL_NAMES.items()}


class View:
    """Merged, read-only situation over a set of leaf states (one process's partitions, or all of them)."""

    def __init__(self, places: PlaceIndex, leaves: dict[str, PlaceState], observations: int,
                 windows: dict[str, float], live: float) -> None:
        self.places = places
        self.leaves = leaves
        self.observations = observations
        self.windows = windows
        self.live = live
        self._merged: dict[str, PlaceState | None] = {}

    def state(self, place_id: str) -> PlaceState | None:
        """Return the state of a place: its own leaf, or the merge of the leaves inside it (None: no data)."""
        if place_id in self._merged:
            return self._merged[place_id]
        p = self.places.get(place_id)
        inside = [place_id, *self.places.descendants(place_id)] if p is not None and p.type != "Grid" else [place_id]
        # sorted: every process sums the same floats in the same order, so they answer alike to the last digit
        found = [self.leaves[pid] for pid in sorted(inside) if pid in self.leaves]
        if not found:
            got = None
        elif len(found) == 1 and found[0].id == place_id:
            got = found[0]
        else:
            level = LEVEL_NAMES.get(p.type, "") if p is not None else found[0].level
            got = merge_states(place_id, level, found, self.windows)
        self._merged[place_id] = got
        return got

    def ids_at(self, level: str) -> list[str]:
        """Return the places of a level (grid … city) that have data, ordered by id."""
        if level == "grid":
            return sorted(pid for pid, s in self.leaves.items() if s.level == "grid")
        kind = LEVEL_TYPES.get(level)
        if kind is None:
            return []
        return [p.id for p in self.places.of_type(kind) if self.state(p.id) is not None]

    def summary(self, place_id: str, now: float, brief: bool = False) -> dict[str, Any]:
        """Return the situation of a place: quantities, freshness and coverage."""
        places = self.places
        state = self.state(place_id)
        p = places.get(place_id)
        cells = places.cells_of(place_id)
        live = [c for c in cells if (s := self.leaves.get(c)) is not None and now - s.last_ts <= self.live]
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
