"""The place hierarchy in memory: parents, children, and which grid cell a point falls in."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from citybrain.model.entity import Entity
from citybrain.model.types import PLACE_LEVELS, level_of


class PlaceIndex:
    """City → district → subdistrict → community → grid, loaded from the store."""

    def __init__(self) -> None:
        self.places: dict[str, Entity] = {}
        self.parent: dict[str, str | None] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        self._shapes: dict[str, BaseGeometry] = {}
        self._tree: STRtree | None = None
        self._tree_ids: list[str] = []
        self._dirty = False

    def load(self, places: list[Entity]) -> None:
        """Replace the index with these place entities."""
        self.__init__()  # type: ignore[misc]
        for p in places:
            self.add(p, rebuild=False)
        self._rebuild()

    def add(self, place: Entity, rebuild: bool = True) -> None:
        """Add or replace one place."""
        old = self.parent.get(place.id)
        if old is not None and place.id in self.children.get(old, []):
            self.children[old].remove(place.id)
        self.places[place.id] = place
        self.parent[place.id] = place.place
        if place.place:
            self.children[place.place].append(place.id)
        if place.location:
            try:
                self._shapes[place.id] = shape(place.location)
            except Exception:
                pass
        if place.type == "Grid":
            self._dirty = True  # the STRtree is rebuilt lazily, on the next locate()

    def remove(self, place_id: str) -> None:
        """Forget a place (deleted); its children, if any, keep pointing at it."""
        place = self.places.pop(place_id, None)
        if place is None:
            return
        parent = self.parent.pop(place_id, None)
        if parent is not None and place_id in self.children.get(parent, []):
            self.children[parent].remove(place_id)
        self._shapes.pop(place_id, None)
        if place.type == "Grid":
            self._dirty = True

    def _rebuild(self) -> None:
        self._dirty = False
        grid_ids = [pid for pid, p in self.places.items() if p.type == "Grid" and pid in self._shapes]
        self._tree_ids = grid_ids
        self._tree = STRtree([self._shapes[g] for g in grid_ids]) if grid_ids else None

    def __contains__(self, place_id: object) -> bool:
        return place_id in self.places

    def get(self, place_id: str) -> Entity | None:
        """Return a place by id."""
        return self.places.get(place_id)

    def of_type(self, level: str) -> list[Entity]:
        """Return all places of a level (City, District, …, Grid), ordered by id."""
        return sorted((p for p in self.places.values() if p.type == level), key=lambda p: p.id)

    def ancestors(self, place_id: str) -> list[str]:
        """Return the place's parents, nearest first."""
        out: list[str] = []
        cur = self.parent.get(place_id)
        while cur and cur not in out:
            out.append(cur)
            cur = self.parent.get(cur)
        return out

    def descendants(self, place_id: str) -> list[str]:
        """Return every place below this one."""
        out: list[str] = []
        stack = list(self.children.get(place_id, []))
        while stack:
            pid = stack.pop()
            out.append(pid)
            stack.extend(self.children.get(pid, []))
        return out

    def cells_of(self, place_id: str) -> list[str]:
        """Return the grid cells inside a place (the place itself if it is a cell)."""
        p = self.places.get(place_id)
        if p is None:
            return []
        if p.type == "Grid":
            return [place_id]
        return sorted(d for d in self.descendants(place_id) if self.places[d].type == "Grid")

    def area_of(self, place_id: str, level: str) -> str | None:
        """Return the ancestor (or self) of a given level, e.g. the Community a grid cell is in."""
        p = self.places.get(place_id)
        if p is not None and p.type == level:
            return place_id
        for a in self.ancestors(place_id):
            if self.places[a].type == level:
                return a
        return None

    def within(self, place_id: str, area_id: str) -> bool:
        """Tell whether place_id is area_id or lies inside it."""
        return place_id == area_id or area_id in self.ancestors(place_id)

    def locate(self, lon: float, lat: float) -> str | None:
        """Return the grid cell containing the point, or None."""
        if self._dirty:
            self._rebuild()
        if self._tree is None:
            return None
        pt = Point(lon, lat)
        for i in self._tree.query(pt):
            gid = self._tree_ids[int(i)]
            if self._shapes[gid].covers(pt):
                return gid
        return None

    def tree(self, root: str | None = None) -> list[dict[str, Any]]:
        """Return the hierarchy as nested dicts (id, type, name, children)."""
        roots = [root] if root else [pid for pid, par in self.parent.items() if not par or par not in self.places]

        def node(pid: str) -> dict[str, Any]:
            p = self.places[pid]
            kids = sorted(self.children.get(pid, []))
            return {"id": pid, "type": p.type, "name": p.value("name"), "children": [node(k) for k in kids]}

        return [node(r) for r in sorted(roots) if r in self.places]

    def check_parent(self, place_type: str, parent: str | None) -> str | None:
        """Return why `parent` cannot hold a place of `place_type`, or None if it can."""
        level = level_of(place_type)
        if level is None:
            return f"{place_type} is not a place type ({', '.join(PLACE_LEVELS)})"
        if level == 0:
            return None if not parent else "a City has no parent"
        if not parent:
            return f"a {place_type} needs a parent place"
        par = self.places.get(parent)
        if par is None:
            return f"unknown place {parent}"
        plevel = level_of(par.type)
        if plevel is None or plevel >= level:
            return f"a {place_type} cannot be inside a {par.type}"
        return None
