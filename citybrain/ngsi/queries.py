"""NGSI-LD query routes: GET /entities, POST /entityOperations/query, /types and /attributes.

The store answers the coarse part (type, id, idPattern, area, paging); q, geo and attrs filters run in Python
over the candidates (`select`), which is the seam for pushing them into the store later.

A place-scoped identity (see citybrain.trust) gets results from its own area only, like every other listing:
entities whose place is its place or a place below it (`area`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from fastapi import APIRouter, Request, Response

from citybrain.confine import confine
from citybrain.model.entity import Entity
from citybrain.ngsi.convert import entity_out, split_key
from citybrain.ngsi.entities import body_and_context, names
from citybrain.ngsi.errors import BadRequestData, ResourceNotFound
from citybrain.ngsi.geo import geo_filter
from citybrain.ngsi.http import (
    int_param,
    ngsi_response,
    options_of,
    representation,
    request_context,
    route,
    split_list,
    tenant_runtime,
)
from citybrain.ngsi.ldcontext import ActiveContext, default_context, from_storage, to_storage
from citybrain.ngsi.query import parse_q
from citybrain.ports import Ports
from citybrain.regex import PatternError, compile_user
from citybrain.runtime import CityBrain
from citybrain.store import EntityQuery

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
MAX_LIMIT = 10000
SCAN_PAGE = 5000


def area(request: Request) -> list[str] | None:
    """Return the places query results are confined to: the requester's area and every place below it
    (None: not confined). The area is the main node's, also for another tenant, whose entities then show
    only if they lie in it."""
    place = confine(request, None)
    if place is None:
        return None
    main: CityBrain = request.app.state.rt
    index = main.ports.find(Ports.places)
    below = index.descendants(place) if index is not None and place in index else []
    return sorted({place, *below})


class Selection:
    """A parsed entity query: which entities (in which places, if confined), filtered how."""

    def __init__(self, params: dict[str, Any], ctx: ActiveContext, places: list[str] | None = None) -> None:
        self.places = places
        types = split_list(params.get("type"), "type")
        if types:
            types = [t for part in types for t in part.replace(";", "|").split("|")]
            if not all(types):
                raise BadRequestData("type: empty type in the list")
        self.types = [to_storage(t, ctx) for t in types] if types else None
        self.ids = split_list(params.get("id"), "id")
        self.id_pattern = params.get("idPattern")
        if self.id_pattern is not None:
            try:
                compile_user(self.id_pattern)
            except PatternError as exc:
                raise BadRequestData(f"idPattern: invalid or unsupported regular expression ({exc}); "
                                     "RE2 syntax, no back-references or look-around") from None
        q = params.get("q")
        self.q = parse_q(q, ctx) if q is not None else None
        self.geo = geo_filter(params.get("georel"), params.get("geometry"), params.get("coordinates"),
                              params.get("geoproperty"), ctx)
        attrs = split_list(params.get("attrs"), "attrs")
        self.attrs = {to_storage(a, ctx) for a in attrs} if attrs else None

    @property
    def in_python(self) -> bool:
        """True when some filter runs in Python (so paging must too)."""
        return self.q is not None or self.geo is not None or self.attrs is not None

    def store_query(self, limit: int, offset: int) -> EntityQuery:
        """Return the coarse store query."""
        return EntityQuery(types=self.types, ids=self.ids, id_pattern=self.id_pattern, places=self.places,
                           limit=limit, offset=offset)

    def matches(self, e: Entity) -> bool:
        """Apply the Python-side filters."""
        if self.attrs is not None and not (self.attrs & set(e.attrs)) and not (
                "location" in self.attrs and e.location is not None):
            return False
        if self.q is not None and not self.q(e):
            return False
        return self.geo is None or self.geo(e)

    async def run(self, rt: CityBrain, limit: int, offset: int) -> tuple[list[Entity], int]:
        """Return one page of matching entities and the total count."""
        if not self.in_python:
            found = await rt.store.query_entities(self.store_query(limit, offset)) if limit else []
            return found, await rt.store.count_entities(self.store_query(limit, offset))
        hits: list[Entity] = []
        start = 0
        while True:
            batch = await rt.store.query_entities(self.store_query(SCAN_PAGE, start))
            hits += [e for e in batch if self.matches(e)]
            if len(batch) < SCAN_PAGE:
                break
            start += SCAN_PAGE
        return hits[offset:offset + limit], len(hits)


async def answer(request: Request, rt: CityBrain, params: dict[str, Any], ctx: ActiveContext) -> Response:
    """Run a query and render the page, with NGSILD-Results-Count when count=true."""
    limit = int_param(request, "limit", 20, 0, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, 10**9)
    opts = options_of(request)
    count = request.query_params.get("count")
    if count not in (None, "true", "false"):
        raise BadRequestData(f"count: {count!r} is not true or false")
    if "count" in opts:  # NGSI-LD ≤ 1.3 and clients such as ngsildclient send options=count
        count = "true"
    if limit == 0 and count != "true":
        raise BadRequestData("limit=0 is only allowed with count=true")
    sel = Selection(params, ctx, area(request))
    found, total = await sel.run(rt, limit, offset)
    fmt = representation(opts)
    pick, omit = names(request, "pick", ctx), names(request, "omit", ctx)
    if "pick" in params and pick is None:
        pick = {to_storage(a, ctx) for a in split_list(params["pick"], "pick") or []}
    out = [entity_out(e, ctx, fmt, sel.attrs, pick, omit, "sysAttrs" in opts) for e in found]
    headers = {"NGSILD-Results-Count": str(total)} if count == "true" else {}
    return ngsi_response(request, out, ctx, headers=headers)


@route(router, "/entities", ["GET"])
async def query_entities(request: Request) -> Response:
    """Query entities by type, id, idPattern, q, attrs and geo-query."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    return await answer(request, rt, dict(request.query_params), ctx)


@route(router, "/entityOperations/query", ["POST"])
async def post_query(request: Request) -> Response:
    """Query entities with a Query object in the body."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ({"type": "Query", …})')
    params: dict[str, Any] = {}
    ents = body.get("entities")
    if ents is not None:
        if not isinstance(ents, list) or not all(isinstance(x, dict) for x in ents):
            raise BadRequestData("entities: expected a list of {type, id, idPattern} selectors")
        types = [x["type"] for x in ents if isinstance(x.get("type"), str)]
        ids = [x["id"] for x in ents if isinstance(x.get("id"), str)]
        pats = [x["idPattern"] for x in ents if isinstance(x.get("idPattern"), str)]
        if types:
            params["type"] = ",".join(types)
        if ids:
            params["id"] = ",".join(ids)
        if pats:
            params["idPattern"] = "|".join(f"(?:{p})" for p in pats)
    for key in ("q", "attrs", "pick", "omit"):
        if key in body:
            val = body[key]
            params[key] = ",".join(val) if isinstance(val, list) else val
            if not isinstance(params[key], str):
                raise BadRequestData(f"{key}: expected a string or a list of strings")
    geo = body.get("geoQ")
    if geo is not None:
        if not isinstance(geo, dict):
            raise BadRequestData("geoQ: expected an object")
        params.update(georel=geo.get("georel"), geometry=geo.get("geometry"), coordinates=geo.get("coordinates"),
                      geoproperty=geo.get("geoproperty"))
    return await answer(request, rt, params, ctx)


async def _all(rt: CityBrain, types: list[str] | None = None, places: list[str] | None = None) -> list[Entity]:
    found: list[Entity] = []
    while True:
        batch = await rt.store.query_entities(EntityQuery(types=types, places=places, limit=SCAN_PAGE,
                                                          offset=len(found)))
        found += batch
        if len(batch) < SCAN_PAGE:
            return found


def _attr_names(e: Entity) -> set[str]:
    return {split_key(k)[0] for k in e.attrs} | ({"location"} if e.location is not None else set())


@route(router, "/types", ["GET"])
async def types(request: Request) -> Response:
    """List entity types (details=true: with their attribute names)."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    places = area(request)
    if places is None:
        counts = await rt.store.entity_types()
    else:
        counts = dict(Counter(e.type for e in await _all(rt, places=places)))
    if request.query_params.get("details") == "true":
        attrs: dict[str, set[str]] = defaultdict(set)
        for e in await _all(rt, places=places):
            attrs[e.type] |= _attr_names(e)
        out: Any = [{"id": default_context().expand(t), "type": "EntityType", "typeName": from_storage(t, ctx),
                     "attributeNames": sorted(from_storage(a, ctx) for a in attrs[t])} for t in sorted(counts)]
    else:
        out = {"id": "urn:ngsi-ld:EntityTypeList:citybrain", "type": "EntityTypeList",
               "typeList": sorted(from_storage(t, ctx) for t in counts)}
    return ngsi_response(request, out, ctx)


@route(router, "/types/{type_name}", ["GET"])
async def type_info(request: Request, type_name: str) -> Response:
    """Describe one entity type: count and attributes with their NGSI-LD types."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    stored = to_storage(type_name, ctx)
    found = await _all(rt, [stored], area(request))
    if not found:
        raise ResourceNotFound(f"entity type {type_name} not found")
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for e in found:
        for key, attr in e.attrs.items():
            kinds[split_key(key)[0]][attr.get("type", "Property")] += 1
    details = [{"id": default_context().expand(a), "type": "Attribute", "attributeName": from_storage(a, ctx),
                "attributeTypes": sorted(k)} for a, k in sorted(kinds.items())]
    out = {"id": default_context().expand(stored), "type": "EntityTypeInformation",
           "typeName": from_storage(stored, ctx), "entityCount": len(found), "attributeDetails": details}
    return ngsi_response(request, out, ctx)


@route(router, "/attributes", ["GET"])
async def attributes(request: Request) -> Response:
    """List attribute names in use (details=true: with counts and types)."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    info = await _attribute_info(rt, area(request))
    if request.query_params.get("details") == "true":
        out: Any = [_attr_doc(a, c, t, ctx) for a, (c, t) in sorted(info.items())]
    else:
        out = {"id": "urn:ngsi-ld:AttributeList:citybrain", "type": "AttributeList",
               "attributeList": sorted(from_storage(a, ctx) for a in info)}
    return ngsi_response(request, out, ctx)


@route(router, "/attributes/{attr}", ["GET"])
async def attribute(request: Request, attr: str) -> Response:
    """Describe one attribute: how many entities have it, its types and the entity types."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    info = await _attribute_info(rt, area(request))
    name = to_storage(attr, ctx)
    if name not in info:
        raise ResourceNotFound(f"attribute {attr} not found")
    count, kinds = info[name]
    return ngsi_response(request, _attr_doc(name, count, kinds, ctx), ctx)


async def _attribute_info(rt: CityBrain, places: list[str] | None) -> dict[str, tuple[int, dict[str, set[str]]]]:
    counts: Counter[str] = Counter()
    kinds: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"attr": set(), "types": set()})
    for e in await _all(rt, places=places):
        for name in {split_key(k)[0] for k in e.attrs}:  # an entity counts once per multi-attribute
            counts[name] += 1
            kinds[name]["types"].add(e.type)
        for key, a in e.attrs.items():
            kinds[split_key(key)[0]]["attr"].add(a.get("type", "Property"))
    return {n: (counts[n], kinds[n]) for n in counts}


def _attr_doc(name: str, count: int, kinds: dict[str, set[str]], ctx: ActiveContext) -> dict[str, Any]:
    return {"id": default_context().expand(name), "type": "Attribute", "attributeName": from_storage(name, ctx),
            "attributeCount": count, "attributeTypes": sorted(kinds["attr"]),
            "typeNames": sorted(from_storage(t, ctx) for t in kinds["types"])}
