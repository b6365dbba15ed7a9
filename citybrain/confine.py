"""Area confinement (platform floor): every read and write is limited to the requester's place.

The trust middleware authenticates a request and refuses a named place or entity outside the requester's
area (`check_area`); routes limit listings to it with `confine(request, place)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.requests import Request
from starlette.types import Scope

from citybrain.errors import Forbidden
from citybrain.identity import LOCAL_ADMIN, Identity
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain
PLACE_TYPES = ("City", "District", "Subdistrict", "Community", "Grid")
PLACE_PARAMS = ("place", "root", "area", "community", "district", "within")
PLACE_SEGMENTS = ("places", "community", "communities", "areas")
SCOPED_FAMILIES = ("model", "ngsi", "dashboard", "cases", "situation", "modes", "indicators", "ingest", "data",
                   "federation", "login")


def identity_of(request: Request) -> Identity:
    """Return the identity the middleware authenticated (the local admin if none was set)."""
    ident = getattr(request.state, "identity", None)
    return ident if isinstance(ident, Identity) else LOCAL_ADMIN


def scope_of(request: Request) -> str | None:
    """Return the place URN the requester is confined to, or None if not confined."""
    return identity_of(request).place


def confine(request: Request, place: str | None) -> str | None:
    """Return the place a listing is limited to: the requested one, or the requester's own area by default.

    (The middleware has already refused a requested place outside the requester's area.)"""
    return place if place is not None else scope_of(request)


def allowed_places(rt: CityBrain, identity: Identity) -> set[str] | None:
    """Return the places an identity may see (its place and everything below it), or None for all."""
    if identity.place is None:
        return None
    index = rt.ports.find(Ports.places)
    below = index.descendants(identity.place) if index is not None and identity.place in index else []
    return {identity.place, *below}


def is_place(urn: str) -> bool:
    """Return True if a URN names a place (City … Grid)."""
    parts = urn.split(":")
    return len(parts) >= 4 and parts[:2] == ["urn", "ngsi-ld"] and parts[2] in PLACE_TYPES


async def check_area(rt: CityBrain, scope: Scope, ident: Identity, family: str) -> None:
    """Refuse a confined identity any place (or entity) outside its area named by path or query."""
    places = allowed_places(rt, ident)
    if places is None or family not in SCOPED_FAMILIES:
        return
    path: str = scope["path"]
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    named = [v for k, v in pairs if k in PLACE_PARAMS]
    segments = [unquote(s) for s in path.split("/")]
    named += [b for a, b in zip(segments, segments[1:], strict=False) if a in PLACE_SEGMENTS and b]
    for seg in segments:
        if seg.startswith("urn:ngsi-ld:") and seg not in named:
            if is_place(seg):
                named.append(seg)
            elif family in ("model", "ngsi"):
                entity = await rt.store.get_entity(seg)
                if entity is not None and entity.place not in places:
                    raise Forbidden(f"entity {seg} lies outside your area {ident.place}")
    for place in named:
        if place not in places:
            raise Forbidden(f"{place} lies outside your area {ident.place}", field="place")
    if scope["method"] == "GET" and path in ("/api/v1/entities", "/api/v1/places"):
        key = "place" if path.endswith("entities") else "root"
        if not any(k == key for k, _ in pairs):  # confine listings to the area
            scope["query_string"] = urlencode([*pairs, (key, ident.place)]).encode()
