"""Resources (teams, vehicles, shelters, supplies): read from Resource entities, imported from CSV.

A team or vehicle is one dispatchable unit; a shelter or supply depot offers its capacity in units
(people, items), so one shelter can take the people of several incidents. `committed` counts the units
already given out; a resource is available while status is "available" and units remain.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from citybrain.errors import ValidationError
from citybrain.model.entity import Entity

TYPES: tuple[str, ...] = ("team", "vehicle", "shelter", "supply")
DIVISIBLE: frozenset[str] = frozenset({"shelter", "supply"})
CSV_COLUMNS: tuple[str, ...] = ("id", "name", "resourceType", "capability", "capacity", "unitCode", "lon", "lat",
                                "owner", "status")
REQUIRED: tuple[str, ...] = ("id", "resourceType", "capability", "lon", "lat")


@dataclass
class Resource:
    """One resource as the dispatcher sees it."""

    id: str
    name: str
    type: str
    capability: list[str]
    capacity: int
    unit: str | None
    lon: float
    lat: float
    status: str
    owner: str | None
    committed: int = 0

    @property
    def units(self) -> int:
        """Dispatchable units left: 1 for a free team or vehicle, the free capacity of a shelter or supply."""
        if self.status != "available":
            return 0
        if self.type in DIVISIBLE:
            return max(self.capacity - self.committed, 0)
        return 0 if self.committed else 1

    def public(self) -> dict[str, Any]:
        """Return the resource as a plain dict for lists and reports."""
        return {"id": self.id, "name": self.name, "type": self.type, "capability": self.capability,
                "capacity": self.capacity, "unit": self.unit, "lon": self.lon, "lat": self.lat,
                "status": self.status, "owner": self.owner, "committed": self.committed, "units": self.units}


def resource_of(entity: Entity) -> Resource | None:
    """Read a Resource entity; None when it has no point location."""
    loc = entity.location or {}
    if loc.get("type") != "Point":
        return None
    lon, lat = loc["coordinates"][:2]
    cap = entity.attrs.get("capacity", {})
    capacity = cap.get("value", 1) if isinstance(cap, dict) else 1
    caps = entity.value("capability", [])
    return Resource(entity.id, str(entity.value("name", entity.id)), str(entity.value("resourceType", "team")),
                    [caps] if isinstance(caps, str) else list(caps), int(capacity or 1),
                    cap.get("unitCode") if isinstance(cap, dict) else None, float(lon), float(lat),
                    str(entity.value("status", "available")), entity.value("owner"),
                    int(entity.value("committed", 0) or 0))


def parse_csv(text: str, source: str = "resources.csv") -> list[dict[str, Any]]:
    """Parse a resources CSV into entity.write payloads; every bad row is reported with its line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(f"{source}:1: missing column(s) {', '.join(missing)}; columns are "
                              f"{', '.join(CSV_COLUMNS)}", field=missing[0], line=1)
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for n, row in enumerate(reader, start=2):
        try:
            out.append(_payload(row))
        except (ValueError, KeyError) as exc:
            problems.append(f"{source}:{n}: {exc}")
    if problems:
        raise ValidationError("; ".join(problems), field="csv", problems=problems)
    return out


def _payload(row: dict[str, str]) -> dict[str, Any]:
    rid = (row.get("id") or "").strip()
    if not rid:
        raise ValueError("id: empty")
    ident = rid if rid.startswith("urn:ngsi-ld:") else f"urn:ngsi-ld:Resource:{rid}"
    rtype = (row.get("resourceType") or "").strip()
    if rtype not in TYPES:
        raise ValueError(f"resourceType: {rtype!r} is not one of {', '.join(TYPES)}")
    caps = [c.strip() for c in (row.get("capability") or "").replace(",", ";").split(";") if c.strip()]
    if not caps:
        raise ValueError("capability: give at least one (separate several with ';')")
    try:
        lon, lat = float(row["lon"]), float(row["lat"])
    except (TypeError, ValueError):
        raise ValueError(f"lon/lat: {row.get('lon')!r}, {row.get('lat')!r} are not numbers") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"lon/lat: {lon}, {lat} out of range")
    text = (row.get("capacity") or "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"capacity: {text!r} is not a positive whole number")
    status = (row.get("status") or "available").strip()
    if status not in ("available", "assigned", "unavailable"):
        raise ValueError(f"status: {status!r} is not available, assigned or unavailable")
    capacity: dict[str, Any] = {"type": "Property", "value": int(text)}
    if (row.get("unitCode") or "").strip():
        capacity["unitCode"] = row["unitCode"].strip()
    attrs: dict[str, Any] = {"name": (row.get("name") or rid).strip(), "resourceType": rtype, "capability": caps,
                             "capacity": capacity, "status": status, "committed": 0}
    owner = (row.get("owner") or "").strip()
    if owner:
        attrs["owner"] = {"type": "Relationship", "object": owner if owner.startswith("urn:")
                          else f"urn:ngsi-ld:Organization:{owner}"}
    return {"id": ident, "type": "Resource", "attrs": attrs,
            "location": {"type": "Point", "coordinates": [lon, lat]}}
