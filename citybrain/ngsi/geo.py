"""NGSI-LD geo-queries (§4.10): georel, geometry, coordinates and geoproperty, evaluated with shapely."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from citybrain.model.entity import Entity
from citybrain.ngsi.errors import BadRequestData
from citybrain.ngsi.ldcontext import ActiveContext, to_storage

GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
RELATIONS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")
GeoPredicate = Callable[[Entity], bool]


def _metric(origin: BaseGeometry) -> Callable[[BaseGeometry], BaseGeometry]:
    """Return a projection of lon/lat to metres on a plane tangent at `origin` (good to a few km error/1000)."""
    c = origin.centroid
    kx = 111_320.0 * math.cos(math.radians(c.y))
    ky = 110_540.0
    return lambda g: shapely.transform(g, lambda xy: xy * [kx, ky])


def parse_geometry(geometry: str | None, coordinates: Any) -> BaseGeometry:
    """Build a shapely geometry from the geometry and coordinates parameters."""
    if geometry not in GEOMETRIES:
        raise BadRequestData(f"geometry: {geometry!r} is not one of {', '.join(GEOMETRIES)}")
    if isinstance(coordinates, str):
        try:
            coordinates = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"coordinates: {coordinates!r} is not a JSON array") from None
    if not isinstance(coordinates, list):
        raise BadRequestData("coordinates: expected a JSON array")
    try:
        geom = shape({"type": geometry, "coordinates": coordinates})
        if geom.is_empty:
            raise ValueError("empty geometry")
    except Exception as exc:
        raise BadRequestData(f"coordinates: not valid for a {geometry} ({exc})") from None
    return geom


def parse_georel(georel: str) -> tuple[str, str | None, float | None]:
    """Return (relation, distance kind, distance in metres) from e.g. 'near;maxDistance==1000'."""
    parts = [p.strip() for p in georel.split(";")]
    rel = parts[0]
    if rel not in RELATIONS:
        raise BadRequestData(f"georel: {rel!r} is not one of {', '.join(RELATIONS)}")
    if rel != "near":
        if len(parts) > 1:
            raise BadRequestData(f"georel: {rel} takes no modifier")
        return rel, None, None
    if len(parts) != 2 or "==" not in parts[1]:
        raise BadRequestData("georel: near needs maxDistance==<metres> or minDistance==<metres>")
    kind, _, number = parts[1].partition("==")
    if kind not in ("maxDistance", "minDistance"):
        raise BadRequestData(f"georel: {kind!r} is not maxDistance or minDistance")
    try:
        distance = float(number)
    except ValueError:
        raise BadRequestData(f"georel: {number!r} is not a distance in metres") from None
    if distance < 0 or not math.isfinite(distance):
        raise BadRequestData("georel: distance must be a finite number ≥ 0")
    return rel, kind, distance


def geo_filter(
    georel: str | None, geometry: str | None, coordinates: Any, geoproperty: str | None, ctx: ActiveContext
) -> GeoPredicate | None:
    """Compile geo-query parameters into a predicate, None when there is no geo-query."""
    if georel is None and geometry is None and coordinates is None:
        return None
    if georel is None or geometry is None or coordinates is None:
        raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
    rel, kind, distance = parse_georel(georel)
    target = parse_geometry(geometry, coordinates)
    prop = to_storage(geoproperty, ctx) if geoproperty else "location"
    project = _metric(target)
    target_m = project(target)

    def test(entity: Entity) -> bool:
        attr = entity.attrs.get(prop)
        geo = attr.get("value") if isinstance(attr, dict) else None
        if geo is None and prop == "location":
            geo = entity.location
        if not isinstance(geo, dict):
            return False
        try:
            g = shape(geo)
        except Exception:
            return False
        if rel == "near":
            d = project(g).distance(target_m)
            assert distance is not None
            return d <= distance if kind == "maxDistance" else d >= distance
        return bool(getattr(g, rel if rel != "equals" else "equals")(target))

    return test

