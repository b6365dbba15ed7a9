"""The built-in demo city "Beijing (demo)": generate it and load it through the entity.write command.

    city = await load_demo_city(rt, size="small")

Loading is idempotent: entities that already exist are skipped, so a second call writes nothing and a
half-finished load is completed. Places are written level by level (a place needs its parent); each level
is written with concurrent commands so the store's group commit takes them in a few transactions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citybrain.demo import catalog, series
from citybrain.demo.layout import Area, Layout, build_layout

if TYPE_CHECKING:
    from citybrain.context import Context
    from citybrain.runtime import CityBrain

CHUNK = 256  # commands in flight at once


@dataclass
class DemoCity:
    """What load_demo_city built (or found already there)."""

    city_id: str
    size: str
    layout: Layout
    counts: dict[str, int]  # entity type -> number of entities in the demo city
    created: int  # entities written by this call (0 when it was already loaded)
    seconds: float
    air_sensors: dict[str, str] = field(default_factory=dict)  # station -> AirQualityObserved id
    weather_sensors: dict[str, str] = field(default_factory=dict)  # station -> WeatherObserved id
    traffic_sensors: dict[str, float] = field(default_factory=dict)  # TrafficFlowObserved id -> scale

    @property
    def already_loaded(self) -> bool:
        """Tell whether the city was in the store before this call."""
        return self.created == 0


def _place_payload(area: Area) -> dict[str, Any]:
    attrs: dict[str, Any] = {"name": area.name, "nameZh": area.name_zh, **area.attrs}
    return {"id": area.id, "type": area.type, "place": area.parent, "location": area.geometry, "attrs": attrs}


def demo_entities(layout: Layout) -> list[list[dict[str, Any]]]:
    """Return every demo entity payload, in levels that must be written one after the other."""
    levels: list[list[dict[str, Any]]] = [[_place_payload(layout.city)]]
    for level in ("District", "Subdistrict", "Community", "Grid"):
        levels.append([_place_payload(a) for a in layout.of_type(level)])
    levels.append(catalog.organisations())
    levels.append(catalog.resources(layout) + catalog.components_and_buildings(layout)
                  + catalog.station_sensors(layout) + catalog.traffic_sensors(layout))
    return levels


async def _write_all(rt: CityBrain, payloads: list[dict[str, Any]], ctx: Context) -> None:
    for i in range(0, len(payloads), CHUNK):
        chunk = payloads[i:i + CHUNK]
        await asyncio.gather(*(rt.execute("entity.write", {"entity": p, "mode": "create"}, ctx) for p in chunk))


async def load_demo_city(rt: CityBrain, size: str = "small") -> DemoCity:
    """Build the demo city in the runtime's store (skipping entities that already exist) and describe it."""
    started = time.perf_counter()
    layout = build_layout(size)
    existing = rt.ports.directory.types
    ctx = rt.context(actor="system:demo")
    created = 0
    counts: Counter[str] = Counter()
    for level in demo_entities(layout):
        counts.update(p["type"] for p in level)
        todo = [p for p in level if p["id"] not in existing]
        if todo:
            await _write_all(rt, todo, ctx)
            created += len(todo)
    city = DemoCity(layout.city.id, size, layout, dict(counts), created, time.perf_counter() - started)
    for s in series.stations():
        city.air_sensors[s["station"]] = f"urn:ngsi-ld:AirQualityObserved:{s['station']}"
        city.weather_sensors[s["station"]] = f"urn:ngsi-ld:WeatherObserved:{s['station']}"
    for key, *_, scale in catalog.TRAFFIC_SENSORS:
        city.traffic_sensors[f"urn:ngsi-ld:TrafficFlowObserved:{key}"] = scale
    return city
