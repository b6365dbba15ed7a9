"""A road graph of the city's grid lattice with speeds, and travel times on it (scipy Dijkstra).

The demo city lies on a regular lattice of ~1 km cells. Roads run along the lattice rows and columns
covering the whole bounding box of the cells (the countryside between districts too): every 8th line is
an expressway (80 km/h), every 3rd an arterial (50 km/h), the rest are local streets (30 km/h inside the
city, 40 km/h between districts). A row or column holding a Road entity is a primary road (60 km/h).
Cells can be impeded (e.g. waterlogged low-lying cells in a rainstorm): edges touching them slow down.
Travel time = access (straight line to the nearest node at 15 km/h) + shortest path on the graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

Bounds = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat
SPEEDS = {"expressway": 80.0, "primary": 60.0, "arterial": 50.0, "local": 30.0, "rural": 40.0}
ACCESS_KMH = 15.0


class RoadGraph:
    """Lattice nodes at cell centres, 4-neighbour road edges with a speed each, travel times in minutes."""

    def __init__(self, cells: Iterable[Bounds], roads: Iterable[tuple[float, float]] = (), margin: int = 1) -> None:
        boxes = list(cells)
        if not boxes:
            raise ValueError("a road graph needs at least one grid cell")
        x0, y0, x1, y1 = boxes[0]
        self.dx, self.dy = x1 - x0, y1 - y0
        # the cells share one lattice, so the south-west-most corners lie on it
        self.ox = min(b[0] for b in boxes) - margin * self.dx
        self.oy = min(b[1] for b in boxes) - margin * self.dy
        self.nx = int(round((max(b[2] for b in boxes) - self.ox) / self.dx)) + margin
        self.ny = int(round((max(b[3] for b in boxes) - self.oy) / self.dy)) + margin
        lat = self.oy + self.ny * self.dy / 2
        self.km_x = self.dx * 111.32 * math.cos(math.radians(lat))
        self.km_y = self.dy * 110.57
        self.urban = np.zeros(self.nx * self.ny, dtype=bool)
        for b in boxes:
            self.urban[self.node_of((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)] = True
        self.primary_rows = {self._ij(lon, lat)[1] for lon, lat in roads}
        self.factor = np.ones(self.nx * self.ny)
        self._matrix: csr_matrix | None = None

    @property
    def nodes(self) -> int:
        """Number of nodes in the lattice."""
        return self.nx * self.ny

    def _ij(self, lon: float, lat: float) -> tuple[int, int]:
        i = min(max(int((lon - self.ox) // self.dx), 0), self.nx - 1)
        j = min(max(int((lat - self.oy) // self.dy), 0), self.ny - 1)
        return i, j

    def node_of(self, lon: float, lat: float) -> int:
        """Return the node nearest to a point (the centre of the lattice cell it lies in)."""
        i, j = self._ij(lon, lat)
        return j * self.nx + i

    def centre(self, node: int) -> tuple[float, float]:
        """Return the (lon, lat) of a node."""
        j, i = divmod(node, self.nx)
        return self.ox + (i + 0.5) * self.dx, self.oy + (j + 0.5) * self.dy

    def line_speed(self, index: int, row: bool, urban: bool) -> float:
        """Return the speed of the road along lattice row (or column) `index`."""
        if index % 8 == 0:
            return SPEEDS["expressway"]
        if row and index in self.primary_rows:
            return SPEEDS["primary"]
        if index % 3 == 0:
            return SPEEDS["arterial"]
        return SPEEDS["local"] if urban else SPEEDS["rural"]

    def impede(self, points: Iterable[tuple[float, float]], factor: float) -> None:
        """Slow every edge touching the nodes at these points by `factor` (0.3 = 30 % of normal speed)."""
        for lon, lat in points:
            self.factor[self.node_of(lon, lat)] = factor
        self._matrix = None

    def matrix(self) -> csr_matrix:
        """Return the sparse matrix of edge travel times in minutes."""
        if self._matrix is not None:
            return self._matrix
        rows: list[int] = []
        cols: list[int] = []
        mins: list[float] = []
        for j in range(self.ny):
            for i in range(self.nx):
                a = j * self.nx + i
                for b, km, speed in (
                    (a + 1, self.km_x, self.line_speed(j, True, bool(self.urban[a]))) if i + 1 < self.nx else (-1, 0, 0),
                    (a + self.nx, self.km_y, self.line_speed(i, False, bool(self.urban[a])))
                    if j + 1 < self.ny else (-1, 0, 0),
                ):
                    if b < 0:
                        continue
                    slow = min(self.factor[a], self.factor[b])
                    rows.append(a)
                    cols.append(b)
                    mins.append(km / (speed * slow) * 60.0)
        n = self.nodes
        self._matrix = csr_matrix((mins, (rows, cols)), shape=(n, n))
        return self._matrix

    def access(self, lon: float, lat: float) -> float:
        """Return minutes from a point to its node at walking-into-traffic speed."""
        cx, cy = self.centre(self.node_of(lon, lat))
        km = math.hypot((lon - cx) / self.dx * self.km_x, (lat - cy) / self.dy * self.km_y)
        return km / ACCESS_KMH * 60.0

    def times(self, origins: Sequence[tuple[float, float]], targets: Sequence[tuple[float, float]]) -> np.ndarray:
        """Return travel minutes from every origin to every target (len(origins) × len(targets))."""
        if not origins or not targets:
            return np.zeros((len(origins), len(targets)))
        o_nodes = np.array([self.node_of(*p) for p in origins])
        t_nodes = np.array([self.node_of(*p) for p in targets])
        unique, inverse = np.unique(o_nodes, return_inverse=True)
        dist = dijkstra(self.matrix(), directed=False, indices=unique)
        graph = dist[inverse][:, t_nodes]
        o_acc = np.array([self.access(*p) for p in origins])
        t_acc = np.array([self.access(*p) for p in targets])
        return np.asarray(graph + o_acc[:, None] + t_acc[None, :])


def graph_of_places(rt_places: object, roads: Iterable[tuple[float, float]] = ()) -> RoadGraph:
    """Build the road graph from a PlaceIndex (its grid cells' polygons)."""
    from shapely.geometry import shape

    cells: list[Bounds] = []
    for p in rt_places.of_type("Grid"):  # type: ignore[attr-defined]
        if p.location:
            cells.append(tuple(shape(p.location).bounds))  # type: ignore[arg-type]
    return RoadGraph(cells, roads)
