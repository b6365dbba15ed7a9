"""The kinds of entity in the city model (人、地、事、物、情、组织) and their NGSI-LD type names."""

from __future__ import annotations

# Places (地), from the top down; each place's `place` is its parent.
PLACE_LEVELS: tuple[str, ...] = ("City", "District", "Subdistrict", "Community", "Grid")

# Things (物)
THING_TYPES: tuple[str, ...] = ("Device", "CityComponent", "Building", "Road", "Resource")

# Situation (情): Smart Data Models observation types the product knows out of the box
OBSERVATION_TYPES: tuple[str, ...] = (
    "AirQualityObserved",
    "WeatherObserved",
    "TrafficFlowObserved",
    "WaterQualityObserved",
    "FloodMonitoring",
    "NoiseLevelObserved",
)

# Organisations (组织)
ORGANISATION_TYPES: tuple[str, ...] = ("Organization",)

# Events (事)
EVENT_TYPES: tuple[str, ...] = ("Alert", "Case", "Directive", "Report", "ModeChange")

# People (人): counts per grid cell, as attributes of Grid (no personal records)
POPULATION_ATTRS: tuple[str, ...] = ("population", "elderly", "children", "disabled")

# Quantities the demo and the rules know, with their UN/CEFACT unit codes
QUANTITY_UNITS: dict[str, str] = {
    "pm25": "GQ",  # microgram per cubic metre
    "pm10": "GQ",
    "so2": "GQ",
    "no2": "GQ",
    "co": "GQ",
    "o3": "GQ",
    "temperature": "CEL",
    "atmosphericPressure": "A97",  # hectopascal
    "dewPoint": "CEL",
    "precipitation": "MMT",  # millimetre (per hour in the demo)
    "windSpeed": "MTS",
    "intensity": "E50",  # vehicles per hour
}


def level_of(entity_type: str) -> int | None:
    """Return the depth of a place type (City=0 … Grid=4), or None if it is not a place."""
    try:
        return PLACE_LEVELS.index(entity_type)
    except ValueError:
        return None


def known_quantities() -> set[str]:
    """Return the quantity names a rule may use without declaring them."""
    return set(QUANTITY_UNITS) | {"windDirection", "waterLevel", "noise", "humidity", "relativeHumidity"}
