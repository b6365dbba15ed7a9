"""What an evaluation reads from the store, loaded once: case and alert documents, sensors, observation times."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from citybrain.clock import iso, parse_time
from citybrain.events import Event
from citybrain.model.types import OBSERVATION_TYPES
from citybrain.ports import Ports
from citybrain.store import EntityQuery

if TYPE_CHECKING:
    from citybrain.model.places import PlaceIndex
    from citybrain.runtime import CityBrain

PAGE = 5000


class NoData(Exception):
    """A data function has nothing to compute from in this period and area (the reason says what)."""


@dataclass(frozen=True)
class Scope:
    """A period [start, end) and an area (a place with everything inside it)."""

    start: str  # canonical UTC ISO 8601
    end: str
    area: str | None
    places: frozenset[str] | None  # None: every place (a node without a place model)
    root: bool = True  # the area is the top of the hierarchy: records without a place count too

    def has(self, place: str | None) -> bool:
        """Tell whether a record placed at `place` belongs to this area."""
        if self.places is None:
            return True
        return (place in self.places) if place else self.root

    def during(self, when: str | None) -> bool:
        """Tell whether a timestamp falls in the period."""
        return bool(when) and self.start <= str(when) < self.end

    @property
    def hours(self) -> float:
        """Length of the period in hours."""
        return (parse_time(self.end) - parse_time(self.start)).total_seconds() / 3600


def period(start: str, end: str) -> tuple[str, str]:
    """Normalise a period given as dates (YYYY-MM-DD, whole days in UTC) or timestamps; end is exclusive."""
    def one(text: str, name: str, is_end: bool) -> datetime:
        if len(text) == 10:
            day = parse_time(text + "T00:00:00Z", name)
            return day + timedelta(days=1) if is_end else day
        return parse_time(text, name)

    a, b = one(start, "from", False), one(end, "to", True)
    if b <= a:
        from citybrain.errors import ValidationError

        raise ValidationError("to: the period must end after it starts", field="to")
    return iso(a), iso(b)


def previous(start: str, end: str, n: int = 1) -> tuple[str, str]:
    """Return the period of the same length n periods earlier."""
    a, b = parse_time(start), parse_time(end)
    span = b - a
    return iso(a - n * span), iso(b - n * span)


@dataclass
class Records:
    """The platform's own records for an evaluation over [since, until)."""

    rt: CityBrain
    since: str
    until: str
    cases: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    sensors: dict[str, str | None] = field(default_factory=dict)  # observation entity -> grid cell
    obs: dict[str, list[str]] = field(default_factory=dict)  # entity -> sorted observedAt of every stored value
    events: dict[str, list[Event]] = field(default_factory=dict)  # type prefix -> events
    case_of_alert: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def places(self) -> PlaceIndex | None:
        """The place index (None without the model component)."""
        places: PlaceIndex | None = self.rt.ports.find(Ports.places)
        return places

    async def load(self) -> None:
        """Read case and alert documents, the observation points and their values in [since, until)."""
        self.cases = [c for c in await self.docs_of("cases") if c.get("kind", "case") == "case"]
        self.alerts = await self.docs_of("alerts")
        for case in self.cases:
            for src in case.get("sources", []):
                if src.get("channel") == "alert" and src.get("ref"):
                    self.case_of_alert[str(src["ref"])] = case
        found = await self.rt.store.query_entities(EntityQuery(types=list(OBSERVATION_TYPES), limit=1_000_000))
        for entity in found:
            self.sensors[entity.id] = entity.place
            rows = await self.rt.store.history(entity.id, since=self.since, until=self.until, limit=10_000_000)
            self.obs[entity.id] = sorted(r.observed_at for r in rows if r.observed_at < self.until and isinstance(
                r.value, int | float) and not isinstance(r.value, bool))  # measured values, not names or flags

    async def docs_of(self, collection: str) -> list[dict[str, Any]]:
        """Return every document of a collection."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            batch = await self.rt.store.list_docs(collection, limit=PAGE, offset=offset)
            out += [d.data for d in batch]
            if len(batch) < PAGE:
                return out
            offset += PAGE

    async def events_of(self, prefix: str) -> list[Event]:
        """Return every stored event whose type starts with `prefix` (read once per prefix)."""
        if prefix not in self.events:
            got: list[Event] = []
            after = 0
            while True:
                batch = await self.rt.store.events(after=after, type_prefix=prefix or None, limit=PAGE)
                got += [e for e in batch if self.since <= e.time < self.until]
                if len(batch) < PAGE:
                    break
                after = batch[-1].seq or after + len(batch)
            self.events[prefix] = got
        return self.events[prefix]

    def count_obs(self, entity: str, start: str, end: str) -> int:
        """Count stored values of an observation point in [start, end)."""
        times = self.obs.get(entity, [])
        return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)

    def last_obs(self, entity: str, end: str) -> str | None:
        """Return the time of the point's latest value before `end` (within the loaded range)."""
        times = self.obs.get(entity, [])
        i = bisect.bisect_left(times, end)
        return times[i - 1] if i else None

    def hours_with_obs(self, entity: str, start: str, end: str) -> int:
        """Count the distinct clock hours in [start, end) in which the point stored a value."""
        times = self.obs.get(entity, [])
        lo, hi = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
        return len({t[:13] for t in times[lo:hi]})

    def sensors_in(self, scope: Scope) -> list[str]:
        """Return the observation points located in the scope's area."""
        return sorted(e for e, place in self.sensors.items() if scope.has(place))

    def cells_by_community(self) -> dict[str | None, list[str]]:
        """Group grid cells by the community they are in."""
        out: dict[str | None, list[str]] = defaultdict(list)
        places = self.places
        if places is not None:
            for cell in places.of_type("Grid"):
                out[places.area_of(cell.id, "Community")].append(cell.id)
        return out


def scope_of(rt: CityBrain, start: str, end: str, area: str | None) -> Scope:
    """Build the scope of a period and area (default: the city); NotFound for an unknown place."""
    places: PlaceIndex | None = rt.ports.find(Ports.places)
    if places is None or not places.places:
        return Scope(start, end, area, None, True)
    if area is None:
        cities = places.of_type("City")
        area = cities[0].id if cities else None
        if area is None:
            return Scope(start, end, None, None, True)
    if area not in places:
        from citybrain.errors import NotFound

        raise NotFound(f"area: unknown place {area}", field="area")
    inside = frozenset([area, *places.descendants(area)])
    return Scope(start, end, area, inside, places.parent.get(area) is None)
