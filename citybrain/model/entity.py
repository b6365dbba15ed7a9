"""Entities, attributes and observations as they are stored.

An entity is its identity row (id, type, place, location) plus its attributes. Attributes are NGSI-LD
attribute objects ({"type": "Property", "value": ..., "observedAt": ..., "unitCode": ...}); each
attribute's current value is state, and every value it ever had is history.
"""

from __future__ import annotations

from typing import Any

import msgspec

Attribute = dict[str, Any]


class Entity(msgspec.Struct, kw_only=True):
    """One thing of the city: a place, a sensor, an observation point, a case, an organisation."""

    id: str
    type: str
    attrs: dict[str, Attribute] = {}
    place: str | None = None  # the grid cell it is in; for places, the parent place
    location: dict[str, Any] | None = None  # GeoJSON geometry
    created_at: str = ""
    modified_at: str = ""
    scope: str | None = None

    def value(self, name: str, default: Any = None) -> Any:
        """Return the value (or object) of attribute `name`."""
        attr = self.attrs.get(name)
        if attr is None:
            return default
        if "value" in attr:
            return attr["value"]
        if "object" in attr:
            return attr["object"]
        return default

    def to_ngsi(self) -> dict[str, Any]:
        """Return the entity in NGSI-LD normalized form (short names, no @context)."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        out.update(self.attrs)
        if self.location is not None and "location" not in out:
            out["location"] = {"type": "GeoProperty", "value": self.location}
        return out


class ObservationRow(msgspec.Struct, array_like=True):
    """One observed attribute value, on its way into state and history."""

    entity_id: str
    attr: str
    observed_at: str  # canonical UTC ISO 8601
    value: Any  # number, string, bool, or JSON structure
    unit: str | None = None


class HistoryRow(msgspec.Struct, kw_only=True):
    """One stored past value of an attribute."""

    entity_id: str
    attr: str
    observed_at: str
    value: Any
    unit: str | None = None
