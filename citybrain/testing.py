"""Test cities and a fake clock for tests of citybrain and of integrations with it.

A `TestCity` describes a small city: a grid of `cols` x `rows` cells, grouped into communities of `k` x `k`
cells, the communities shared out (in order) among `districts` districts of one subdistrict each, under one
city. URNs are deterministic and configurable; with `geometry` on, every place has a lon/lat box and every
sensor a point inside its cell. `build(rt, city)` writes it through commands; `running(city)` starts a node
on SQLite in a temporary directory (or on PostgreSQL) with a `FakeClock`, builds the city and yields the
runtime, an HTTP client over the ASGI app and the clock::

    from citybrain.testing import Sensor, TestCity, running

    CITY = TestCity(sensors=(Sensor("WeatherObserved"),))

    async def test_rain() -> None:
        async with running(CITY) as (rt, client, clock):
            gauge = CITY.sensor(1, 2, "WeatherObserved")
            await rt.ports.ingest.submit([{"entity": gauge, "attr": "precipitation", "value": 12.0,
                                           "observedAt": "2026-03-02T01:00:00Z"}])
            assert (await client.get(f"/api/v1/entities/{gauge}")).status_code == 200
            clock.advance(3600)

Cell (i, j) is column i (west to east) and row j (south to north). The URN schemes are `str.format`
templates; the fields they may use are, for a cell: i, j, n (1 + i + cols * j) and n0 (n - 1); for a
community: i, j (its position among communities), n and n0 (numbered the same way); for a district and
its subdistrict: n and n0; for a sensor: the fields of its cell, `cell` (the last segment of the cell's URN)
and `type`. A cell scheme may also be a function of (i, j).

This module imports neither pytest nor any feature package (the HTTP app is imported when a client is
served), so any test runner can use it.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain

if TYPE_CHECKING:
    import httpx

__all__ = ["START", "FakeClock", "Running", "Sensor", "TestCity", "build", "running", "serve"]

START = "2026-03-02T01:00:00Z"  # a Monday, 09:00 in Beijing: the default start of the fake clock

Attrs = Mapping[str, Any]


def _polygon(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@dataclass(frozen=True)
class Sensor:
    """A sensor in every cell: its entity type, URN scheme, attributes and where in the cell it stands.

    `at` is the point as fractions of the cell's width and height from its south-west corner (the middle by
    default). With `placed` off the sensor is written without a place, so the model locates it by its point.
    """

    type: str
    id: str = "urn:ngsi-ld:{type}:{cell}"
    attrs: Attrs = field(default_factory=dict)
    at: tuple[float, float] = (0.5, 0.5)
    placed: bool = True


@dataclass(frozen=True)
class TestCity:
    """A grid city: cells, communities of k x k cells, districts with one subdistrict each, one city."""

    __test__ = False  # not a test class, whatever a runner's naming rules say

    cols: int = 4
    rows: int = 4
    k: int = 2
    districts: int = 2
    city: str = "urn:ngsi-ld:City:tc"
    cell_id: str | Callable[[int, int], str] = "urn:ngsi-ld:Grid:g{i}{j}"
    community_id: str = "urn:ngsi-ld:Community:m{n}"
    district_id: str = "urn:ngsi-ld:District:d{n}"
    subdistrict_id: str = "urn:ngsi-ld:Subdistrict:s{n}"
    origin: tuple[float, float] = (116.0, 39.8)  # (lon, lat) of the south-west corner of cell (0, 0)
    size: tuple[float, float] = (0.1, 0.05)  # (width, height) of a cell in degrees
    geometry: bool = True  # polygons on places, points on sensors
    sensors: Sequence[Sensor] = ()
    population: int | Callable[[int, int], int] | None = None
    cell_attrs: Attrs | Callable[[int, int], Attrs] | None = None
    names: bool = False  # give every place a `name` property (the last segment of its URN)

    # -- the grid ------------------------------------------------------------------------------------------

    def cells(self) -> Iterator[tuple[int, int]]:
        """Yield every cell's (i, j), column by column."""
        for i in range(self.cols):
            for j in range(self.rows):
                yield i, j

    def cell(self, i: int, j: int = 0) -> str:
        """Return the URN of cell (i, j)."""
        self._check(i, j)
        if callable(self.cell_id):
            return self.cell_id(i, j)
        n = 1 + i + self.cols * j
        return self.cell_id.format(i=i, j=j, n=n, n0=n - 1)

    def box(self, i: int, j: int = 0) -> dict[str, Any]:
        """Return the GeoJSON polygon of cell (i, j)."""
        self._check(i, j)
        return self._span(i, j, i + 1, j + 1)

    def centre(self, i: int, j: int = 0) -> tuple[float, float]:
        """Return (lon, lat) of the middle of cell (i, j)."""
        return self.point(i, j, (0.5, 0.5))

    def point(self, i: int, j: int = 0, at: tuple[float, float] = (0.5, 0.5)) -> tuple[float, float]:
        """Return (lon, lat) of the point `at` (fractions of width and height) in cell (i, j)."""
        self._check(i, j)
        (x, y), (dx, dy) = self.origin, self.size
        return x + (i + at[0]) * dx, y + (j + at[1]) * dy

    # -- the hierarchy -------------------------------------------------------------------------------------

    @property
    def community_cols(self) -> int:
        """How many communities there are west to east."""
        return -(-self.cols // self.k)

    @property
    def community_rows(self) -> int:
        """How many communities there are south to north."""
        return -(-self.rows // self.k)

    def _community_n(self, i: int, j: int) -> int:
        self._check(i, j)
        return 1 + i // self.k + self.community_cols * (j // self.k)

    def _district_n(self, community_n: int) -> int:
        total = self.community_cols * self.community_rows
        return 1 + (community_n - 1) * min(self.districts, total) // total

    def community(self, i: int, j: int = 0) -> str:
        """Return the URN of the community cell (i, j) is in."""
        n = self._community_n(i, j)
        return self.community_id.format(i=i // self.k, j=j // self.k, n=n, n0=n - 1)

    def district(self, i: int, j: int = 0) -> str:
        """Return the URN of the district cell (i, j) is in."""
        n = self._district_n(self._community_n(i, j))
        return self.district_id.format(n=n, n0=n - 1)

    def subdistrict(self, i: int, j: int = 0) -> str:
        """Return the URN of the subdistrict cell (i, j) is in."""
        n = self._district_n(self._community_n(i, j))
        return self.subdistrict_id.format(n=n, n0=n - 1)

    def communities(self) -> list[str]:
        """Return every community's URN, in number order."""
        out: dict[int, str] = {}
        for i, j in self.cells():
            out.setdefault(self._community_n(i, j), self.community(i, j))
        return [out[n] for n in sorted(out)]

    def sensor(self, i: int, j: int = 0, kind: str | None = None) -> str:
        """Return the URN of the sensor of type `kind` (the first sensor by default) in cell (i, j)."""
        spec = next((s for s in self.sensors if kind is None or s.type == kind), None)
        if spec is None:
            raise KeyError(f"the test city has no sensor {kind!r}")
        return self._sensor_id(spec, i, j)

    # -- the entities --------------------------------------------------------------------------------------

    def places(self) -> list[dict[str, Any]]:
        """Return the places as `entity.write` entities (id, type, place, location, attrs), parents first."""
        cells = list(self.cells())
        out = [self._place(self.city, "City", None, cells)]
        by_district: dict[int, list[tuple[int, int]]] = {}
        by_community: dict[int, list[tuple[int, int]]] = {}
        for i, j in cells:
            cn = self._community_n(i, j)
            by_community.setdefault(cn, []).append((i, j))
            by_district.setdefault(self._district_n(cn), []).append((i, j))
        for _, members in sorted(by_district.items()):
            i, j = members[0]
            out.append(self._place(self.district(i, j), "District", self.city, members))
            out.append(self._place(self.subdistrict(i, j), "Subdistrict", self.district(i, j), members))
        for _, members in sorted(by_community.items()):
            i, j = members[0]
            out.append(self._place(self.community(i, j), "Community", self.subdistrict(i, j), members))
        for i, j in cells:
            out.append(self._place(self.cell(i, j), "Grid", self.community(i, j), [(i, j)], self._cell_attrs(i, j)))
        return out

    def sensor_entities(self) -> list[dict[str, Any]]:
        """Return every sensor as an `entity.write` entity, cell by cell."""
        out: list[dict[str, Any]] = []
        for i, j in self.cells():
            for spec in self.sensors:
                entity: dict[str, Any] = {"id": self._sensor_id(spec, i, j), "type": spec.type}
                if spec.placed:
                    entity["place"] = self.cell(i, j)
                if self.geometry:
                    entity["location"] = {"type": "Point", "coordinates": list(self.point(i, j, spec.at))}
                if spec.attrs:
                    entity["attrs"] = dict(spec.attrs)
                out.append(entity)
        return out

    def entities(self) -> list[dict[str, Any]]:
        """Return the places, then the sensors."""
        return self.places() + self.sensor_entities()

    # -- helpers -------------------------------------------------------------------------------------------

    def _check(self, i: int, j: int) -> None:
        if not (0 <= i < self.cols and 0 <= j < self.rows):
            raise IndexError(f"cell ({i}, {j}) is outside the {self.cols} x {self.rows} test city")

    def _span(self, i0: int, j0: int, i1: int, j1: int) -> dict[str, Any]:
        (x, y), (dx, dy) = self.origin, self.size
        return _polygon(x + i0 * dx, y + j0 * dy, x + i1 * dx, y + j1 * dy)

    def _place(self, pid: str, ptype: str, parent: str | None, members: list[tuple[int, int]],
               attrs: Attrs | None = None) -> dict[str, Any]:
        entity: dict[str, Any] = {"id": pid, "type": ptype, "place": parent}
        if self.geometry:  # the bounding box of the place's cells
            entity["location"] = self._span(min(i for i, _ in members), min(j for _, j in members),
                                            max(i for i, _ in members) + 1, max(j for _, j in members) + 1)
        out = dict(attrs or {})
        if self.names:
            out["name"] = {"type": "Property", "value": pid.rsplit(":", 1)[-1]}
        if out:
            entity["attrs"] = out
        return entity

    def _cell_attrs(self, i: int, j: int) -> dict[str, Any]:
        attrs = dict(self.cell_attrs(i, j) if callable(self.cell_attrs) else self.cell_attrs or {})
        if self.population is not None:
            attrs["population"] = self.population(i, j) if callable(self.population) else self.population
        return attrs

    def _sensor_id(self, spec: Sensor, i: int, j: int) -> str:
        n = 1 + i + self.cols * j
        return spec.id.format(i=i, j=j, n=n, n0=n - 1, cell=self.cell(i, j).rsplit(":", 1)[-1], type=spec.type)


async def build(rt: CityBrain, city: TestCity) -> None:
    """Write the city's places (parents first), then its sensors, through `entity.write` commands."""
    for entity in city.entities():
        await rt.execute("entity.write", {"entity": entity})


@asynccontextmanager
async def serve(rt: CityBrain, extensions: Sequence[str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an `httpx.AsyncClient` over the HTTP app of a started runtime (the app does not manage it).

    `extensions` limits the mounted HTTP extensions (by default every component's routes are mounted).
    """
    import httpx

    from citybrain.api import app as app_module

    saved = app_module.EXTENSIONS[:]
    if extensions is not None:
        app_module.EXTENSIONS[:] = list(extensions)
    try:
        app = app_module.create_app(rt, manage_runtime=False)
    finally:
        app_module.EXTENSIONS[:] = saved
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


class Running(NamedTuple):
    """What `running` yields: the started runtime, an HTTP client over its app and its fake clock."""

    rt: CityBrain
    client: httpx.AsyncClient
    clock: FakeClock


@asynccontextmanager
async def running(city: TestCity | None, *, directory: str | Path | None = None, store: str | None = None,
                  start: str = START, clock: FakeClock | None = None, components: list[str] | None = None,
                  extensions: Sequence[str] | None = None, extra: Mapping[str, Any] | None = None,
                  **settings: Any) -> AsyncIterator[Running]:
    """Start a node with a fake clock, build `city` on it (None: no places) and yield `Running(rt, client, clock)`.

    The store is SQLite in `directory` (a temporary directory, removed afterwards, when not given) unless
    `store` is given (a PostgreSQL URL, or any store string `Settings.store` takes). Other keyword arguments
    are `Settings` fields (`auth="on"`, `node_id=...`); `extra` is merged into `Settings.extra` (component
    options such as `rules_file`). `components` limits the components set up, `extensions` the HTTP
    extensions mounted. The runtime is stopped, and the client closed, when the block ends.
    """
    owned = tempfile.TemporaryDirectory(prefix="citybrain-test-") if directory is None else None
    with owned or nullcontext():
        where = Path(owned.name if owned is not None else str(directory))
        config = Settings(store=store or str(where / "city.db"), **{"bus": "memory", **settings})
        config.extra.update(extra or {})
        fake = clock or FakeClock(start)
        rt = CityBrain(config, clock=fake, components=components)
        await rt.start()
        try:
            if city is not None:
                await build(rt, city)
            async with serve(rt, extensions) as client:
                yield Running(rt, client, fake)
        finally:
            await rt.stop()

