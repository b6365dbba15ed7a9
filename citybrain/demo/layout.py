"""The demo city's geography: districts grown block by block around the air stations on a regular lattice.

Pure and deterministic (no I/O but the stations file): the same size and seed always give the same layout.
See docs/demo-city.md for the method.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import box, mapping
from shapely.ops import unary_union

from citybrain.demo import series

CELL_W = 0.012  # degrees of longitude (~1.0 km at 40° N)
CELL_H = 0.009  # degrees of latitude (~1.0 km)
ORIGIN = (115.9003, 39.6004)  # south-west corner of the lattice (off the 0.001° station grid)
SEED = 20160720

# size -> (subdistricts per district, communities per subdistrict, cells per community side)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (1, 2, 2),  # 8 × 1 × 2 × 4 = 64 cells
    "small": (3, 3, 2),  # 8 × 3 × 3 × 4 = 288 cells
    "medium": (4, 5, 3),  # 8 × 4 × 5 × 9 = 1,440 cells
    "large": (6, 8, 4),  # 8 × 6 × 8 × 16 = 6,144 cells
}


@dataclass
class Area:
    """One place of the hierarchy with its geometry and generated attributes."""

    id: str
    type: str
    parent: str | None
    name: str
    name_zh: str
    geometry: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # min lon, min lat, max lon, max lat


@dataclass
class Layout:
    """All places of the demo city, parents before children, plus which cell each station lies in."""

    size: str
    city: Area
    areas: list[Area]  # districts, subdistricts, communities, cells (in that order)
    station_cell: dict[str, str]  # station -> grid cell id
    district_of: dict[str, str]  # station -> district id

    def of_type(self, place_type: str) -> list[Area]:
        """Return the areas of one level, in generation order."""
        return [a for a in self.areas if a.type == place_type]

    def cell_at(self, lon: float, lat: float) -> Area | None:
        """Return the cell whose rectangle covers the point, or None."""
        for a in self.of_type("Grid"):
            x0, y0, x1, y1 = a.bounds
            if x0 <= lon <= x1 and y0 <= lat <= y1:
                return a
        return None


def _r(x: float) -> float:
    return round(x, 6)


def _geo(geom: Any) -> dict[str, Any]:
    """GeoJSON of a shapely geometry with coordinates rounded to 1e-6 degrees."""

    def fix(c: Any) -> Any:
        return [_r(c[0]), _r(c[1])] if isinstance(c[0], float | int) else [fix(x) for x in c]

    gj = mapping(geom)
    return {"type": gj["type"], "coordinates": fix(gj["coordinates"])}


def _rect(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    x0, y0, x1, y1 = _r(x0), _r(y0), _r(x1), _r(y1)
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _grow(seeds: dict[str, list[tuple[int, int]]], need: int) -> dict[str, list[tuple[int, int]]]:
    """Round-robin growth: each district claims the free neighbour block nearest to one of its seeds."""
    owner: dict[tuple[int, int], str] = {}
    claimed: dict[str, list[tuple[int, int]]] = {d: [] for d in seeds}
    for d in sorted(seeds):
        for b in seeds[d]:
            if owner.get(b, d) != d:
                raise ValueError(f"stations of {d} and {owner[b]} fall in the same block; use a smaller size")
            if b not in owner:
                owner[b] = d
                claimed[d].append(b)

    def dist(d: str, b: tuple[int, int]) -> float:
        return min(math.hypot(b[0] - s[0], b[1] - s[1]) for s in seeds[d])

    while any(len(c) < need for c in claimed.values()):
        for d in sorted(seeds):
            if len(claimed[d]) >= need:
                continue
            frontier = {(i + di, j + dj) for i, j in claimed[d] for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))}
            free = [b for b in frontier if b not in owner]
            if not free:  # boxed in: take the nearest free block anywhere within reach
                free = [(i, j) for i0, j0 in seeds[d] for i in range(i0 - 12, i0 + 13)
                        for j in range(j0 - 12, j0 + 13) if (i, j) not in owner]
            best = min(free, key=lambda b: (dist(d, b), b))
            owner[best] = d
            claimed[d].append(best)
    return claimed


def build_layout(size: str = "small", seed: int = SEED) -> Layout:
    """Generate the demo city's districts, subdistricts, communities and grid cells."""
    if size not in SIZES:
        raise ValueError(f"size: {size!r} is not one of {', '.join(SIZES)}")
    n_sub, n_com, k = SIZES[size]
    bw, bh = k * CELL_W, k * CELL_H
    stations = series.stations()
    districts: dict[str, dict[str, str]] = {}
    seeds: dict[str, list[tuple[int, int]]] = {}
    for s in stations:
        lon, lat = float(s["longitude"]), float(s["latitude"])
        key = s["district"].lower()
        districts.setdefault(key, s)
        seeds.setdefault(key, []).append((math.floor((lon - ORIGIN[0]) / bw), math.floor((lat - ORIGIN[1]) / bh)))
    blocks = _grow(seeds, n_sub * n_com)
    areas: list[Area] = []
    subs: list[Area] = []
    coms: list[Area] = []
    cells: list[Area] = []
    city_id = "urn:ngsi-ld:City:beijing-demo"
    for d in sorted(blocks):
        info = districts[d]
        did = f"urn:ngsi-ld:District:{d}"
        dname, dzh = info["district"], info["district_zh"]
        urban = info["station_type"] == "urban"
        shapes = [box(ORIGIN[0] + i * bw, ORIGIN[1] + j * bh, ORIGIN[0] + (i + 1) * bw, ORIGIN[1] + (j + 1) * bh)
                  for i, j in blocks[d]]
        areas.append(Area(did, "District", city_id, dname, dzh, _geo(unary_union(shapes)),
                          {"stationType": "urban" if urban else "suburban"}))
        ci, cj = (sum(x) / len(x) for x in zip(*seeds[d], strict=True))
        ordered = sorted(blocks[d], key=lambda b: (math.atan2(b[1] - cj, b[0] - ci), b))
        for si in range(n_sub):
            sid = f"urn:ngsi-ld:Subdistrict:{d}-{si + 1}"
            mine = ordered[si * n_com:(si + 1) * n_com]
            geom = _geo(unary_union([shapes[blocks[d].index(b)] for b in mine]))
            subs.append(Area(sid, "Subdistrict", did, f"{dname} Subdistrict {si + 1}", f"{dzh[:-1]}第{si + 1}街道", geom))
            for mi, (bi, bj) in enumerate(mine):
                mid = f"{d}-{si + 1}-{mi + 1}"
                x0, y0 = ORIGIN[0] + bi * bw, ORIGIN[1] + bj * bh
                coms.append(Area(f"urn:ngsi-ld:Community:{mid}", "Community", sid,
                                 f"{dname} {si + 1}-{mi + 1} Community", f"{dzh[:-1]}{si + 1}街道第{mi + 1}社区",
                                 _rect(x0, y0, x0 + bw, y0 + bh), bounds=(x0, y0, x0 + bw, y0 + bh)))
                for n in range(k * k):
                    gx0, gy0 = x0 + (n % k) * CELL_W, y0 + (n // k) * CELL_H
                    bounds = (_r(gx0), _r(gy0), _r(gx0 + CELL_W), _r(gy0 + CELL_H))
                    gid = f"{mid}-{n + 1}"
                    cell = Area(f"urn:ngsi-ld:Grid:{gid}", "Grid", f"urn:ngsi-ld:Community:{mid}",
                                f"Grid {gid}", f"网格 {gid}", _rect(*bounds), bounds=bounds)
                    cell.attrs = _cell_attrs(cell, urban, d in ("dongcheng", "xicheng"), seed)
                    cells.append(cell)
    areas += subs + coms + cells
    city_geom = _geo(unary_union([box(*a.bounds) for a in coms]).envelope)
    city = Area(city_id, "City", None, "Beijing (demo)", "北京（演示）", city_geom)
    layout = Layout(size, city, areas, {}, {})
    for s in stations:
        found = layout.cell_at(float(s["longitude"]), float(s["latitude"]))
        if found is None:
            raise ValueError(f"station {s['station']} is outside every generated cell")
        layout.station_cell[s["station"]] = found.id
        layout.district_of[s["station"]] = f"urn:ngsi-ld:District:{s['district'].lower()}"
    return layout


def _cell_attrs(cell: Area, urban: bool, core: bool, seed: int) -> dict[str, Any]:
    """People counts and risk attributes of a cell, from a random generator seeded by the cell id."""
    rng = random.Random(f"{seed}:{cell.id}")
    population = int(rng.lognormvariate(math.log(16000 if urban else 4000), 0.45))
    elderly_share = rng.uniform(0.18, 0.28) if core else rng.uniform(0.10, 0.20)
    return {
        "population": population,
        "elderly": int(population * elderly_share),
        "children": int(population * rng.uniform(0.08, 0.15)),
        "disabled": int(population * rng.uniform(0.01, 0.03)),
        "lowLying": rng.random() < 0.15,
        "oldBuildings": round(rng.uniform(0.4, 0.85) if core else rng.uniform(0.05, 0.4), 2),
        "elevation": round(rng.uniform(38, 55) if urban else rng.uniform(35, 120), 1),
        "areaKm2": round(CELL_W * 111.32 * math.cos(math.radians(cell.bounds[1])) * CELL_H * 110.57, 3),
    }
