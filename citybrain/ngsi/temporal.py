"""NGSI-LD temporal API (/temporal/entities) over the store's history.

Retrieval and query: timerel, lastN, temporalValues, aggregation (aggrMethods over aggrPeriodDuration
buckets). Writes: POST /temporal/entities (create or update a temporal representation) and
POST /temporal/entities/{id}/attrs (add attribute instances), both through the `entity.temporal_write`
command. History is keyed by entity, attribute and observedAt, so every instance needs observedAt and
sending the same instance again is idempotent; an instance keeps its value and unitCode in history (other
sub-attributes live on the current value only). Instances with a datasetId are the history of that instance
of a multi-attribute: they come back with their datasetId (an array of instances for temporalValues and
aggregations when an attribute has several). Deleting a temporal representation or single instances is
not offered: deleting an entity keeps its history by design (405 OperationNotSupported).
"""

from __future__ import annotations

import re
import statistics
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from citybrain.clock import iso, parse_time
from citybrain.errors import CityBrainError
from citybrain.model.entity import Entity, HistoryRow
from citybrain.model.urn import is_urn
from citybrain.ngsi.convert import attr_in, check_name, dataset_of, entity_type_in, instance_key, split_key
from citybrain.ngsi.entities import body_and_context, execute, load, names
from citybrain.ngsi.errors import BadRequestData
from citybrain.ngsi.http import int_param, ngsi_response, options_of, request_context, route, tenant_runtime
from citybrain.ngsi.ldcontext import ActiveContext, from_storage, to_storage
from citybrain.ngsi.queries import MAX_LIMIT, Selection, area
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/ngsi-ld/v1/temporal", tags=["ngsi-ld"])
METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return iso(parse_time(raw, name))
    except CityBrainError as exc:
        raise BadRequestData(exc.detail) from None


def time_window(request: Request) -> tuple[str | None, str | None]:
    """Return (since, until) from timerel, timeAt and endTimeAt."""
    rel = request.query_params.get("timerel")
    at, end = _time(request, "timeAt"), _time(request, "endTimeAt")
    if rel is None:
        if at or end:
            raise BadRequestData("timeAt/endTimeAt need timerel")
        return None, None
    if rel not in ("before", "after", "between"):
        raise BadRequestData(f"timerel: {rel!r} is not before, after or between")
    if at is None:
        raise BadRequestData("timerel needs timeAt")
    if rel == "between":
        if end is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        if end <= at:
            raise BadRequestData("endTimeAt must be after timeAt")
        return at, end
    return (None, at) if rel == "before" else (at, None)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration of weeks, days, hours, minutes and seconds."""
    m = _DURATION.match(text)
    if not m or text in ("P", "PT"):
        raise BadRequestData(f"aggrPeriodDuration: {text!r} is not an ISO 8601 duration such as PT1H")
    w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    span = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    if span.total_seconds() <= 0:
        raise BadRequestData("aggrPeriodDuration must be positive")
    return span


def aggregate(rows: list[HistoryRow], methods: list[str], period: timedelta | None) -> dict[str, Any]:
    """Aggregate rows per period bucket: {method: [[value, start, end], …]}."""
    buckets: dict[str, list[HistoryRow]] = {}
    if period is None:
        if rows:
            buckets[rows[0].observed_at] = rows
    else:
        for r in rows:
            t = parse_time(r.observed_at)
            start = t - timedelta(seconds=t.timestamp() % period.total_seconds())
            buckets.setdefault(iso(start), []).append(r)
    out: dict[str, Any] = {m: [] for m in methods}
    for begin, group in sorted(buckets.items()):
        end = iso(parse_time(begin) + period) if period else group[-1].observed_at
        nums = [r.value for r in group if isinstance(r.value, int | float) and not isinstance(r.value, bool)]
        values: dict[str, Any] = {"totalCount": len(group), "distinctCount": len({repr(r.value) for r in group})}
        if nums:
            values.update(sum=sum(nums), avg=sum(nums) / len(nums), min=min(nums), max=max(nums),
                          stddev=statistics.pstdev(nums), sumsq=sum(n * n for n in nums))
        for m in methods:
            if m in values:
                out[m].append([values[m], begin, end])
    return out


async def temporal_entity(request: Request, rt: CityBrain, entity: Entity, ctx: ActiveContext) -> dict[str, Any]:
    """Render an entity's history in the temporal representation the request asks for."""
    since, until = time_window(request)
    last_n = int_param(request, "lastN", 0, 0, 100000) or None
    attrs = names(request, "attrs", ctx)
    opts = options_of(request)
    methods = [m.strip() for m in (request.query_params.get("aggrMethods") or "").split(",") if m.strip()]
    bad = set(methods) - set(METHODS)
    if bad:
        raise BadRequestData(f"aggrMethods: unknown method(s) {', '.join(sorted(bad))}")
    period = parse_duration(request.query_params["aggrPeriodDuration"]) \
        if request.query_params.get("aggrPeriodDuration") else None
    if (period or "aggregatedValues" in opts) and not methods:
        raise BadRequestData("aggrPeriodDuration and options=aggregatedValues need aggrMethods")
    out: dict[str, Any] = {"id": entity.id, "type": from_storage(entity.type, ctx)}
    for stored, current in sorted(entity.attrs.items(), key=lambda kv: split_key(kv[0])[1] or ""):
        name, dataset = split_key(stored)  # a multi-attribute's instances are stored apart (convert.instance_key)
        if attrs is not None and name not in attrs:
            continue
        rows = await rt.store.history(entity.id, stored, since, until, last_n)
        kind = current.get("type", "Property")
        key = from_storage(name, ctx)
        ds: dict[str, Any] = {"datasetId": dataset} if dataset else {}
        if methods or "temporalValues" in opts:
            item = {"type": kind, **ds, **(aggregate(rows, methods, period) if methods else
                                          {"values": [[r.value, r.observed_at] for r in rows]})}
            # one instance: an object; several (datasetIds): an array of them
            if key not in out:
                out[key] = item
            elif isinstance(out[key], list):
                out[key].append(item)
            else:
                out[key] = [out[key], item]
        else:
            vk = "object" if kind == "Relationship" else "value"
            out.setdefault(key, []).extend({"type": kind, vk: r.value, "observedAt": r.observed_at, **ds,
                                            **({"unitCode": r.unit} if r.unit else {})} for r in rows)
    return out


@route(router, "/entities/{entity_id}", ["GET"])
async def retrieve(request: Request, entity_id: str) -> Response:
    """Return the history of one entity."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    entity = await load(rt, entity_id)
    return ngsi_response(request, await temporal_entity(request, rt, entity, ctx), ctx)


@route(router, "/entities", ["GET"])
async def query(request: Request) -> Response:
    """Return the history of the entities a query selects."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    params = dict(request.query_params)
    if not any(k in params for k in ("type", "id", "idPattern", "q", "attrs", "georel")):
        raise BadRequestData("a temporal query needs type, id, idPattern, q, attrs or a geo-query")
    limit = int_param(request, "limit", 20, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, 10**9)
    found, total = await Selection(params, ctx, area(request)).run(rt, limit, offset)
    out = [await temporal_entity(request, rt, e, ctx) for e in found]
    counted = params.get("count") == "true" or "count" in options_of(request)
    headers = {"NGSILD-Results-Count": str(total)} if counted else {}
    return ngsi_response(request, out, ctx, headers=headers)


NOT_ATTRIBUTES = ("id", "@id", "type", "@type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt")


def instances_in(body: dict[str, Any], ctx: ActiveContext) -> dict[str, list[dict[str, Any]]]:
    """Return the attribute instances of a temporal representation: stored name -> instances.

    Each attribute is one instance object or an array of them (normalized), every one with observedAt."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, raw in body.items():
        if name in NOT_ATTRIBUTES:
            continue
        check_name(name)
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise BadRequestData(f"{name}: an empty array of attribute instances")
        stored = to_storage(name, ctx)
        for i, item in enumerate(items):
            label = f"{name}[{i}]" if isinstance(raw, list) else name
            if not isinstance(item, dict):
                raise BadRequestData(f"{label}: an attribute instance is an object such as "
                                     '{"type": "Property", "value": 1, "observedAt": "2024-01-01T00:00:00Z"}')
            attr = attr_in(label, item, ctx)
            if "observedAt" not in attr:
                raise BadRequestData(f"{label}: every attribute instance needs observedAt (history is kept by it)")
            # instances with a datasetId belong to that instance of a multi-attribute (convert.instance_key)
            out.setdefault(instance_key(stored, dataset_of(item, label)), []).append(attr)
    return out


@route(router, "/entities", ["POST"], 201)
async def create_or_update(request: Request) -> Response:
    """Create a temporal representation (201 + Location) or add its instances to an existing entity (204)."""
    rt = await tenant_runtime(request, create=True)
    body, ctx = await body_and_context(request, rt)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a temporal entity: {id, type, attribute: [instances …]}")
    eid = body.get("id", body.get("@id"))
    if not is_urn(eid):
        raise BadRequestData(f"id: {eid!r} is not a URI such as urn:ngsi-ld:Type:id")
    if "type" not in body and "@type" not in body:
        raise BadRequestData("type: a temporal entity needs a type")
    etype = entity_type_in(body.get("type", body.get("@type")), ctx)
    attrs = instances_in(body, ctx)
    done = await execute(rt, request, "entity.temporal_write", {"id": eid, "type": etype, "attrs": attrs})
    if done["created"]:
        return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/temporal/entities/{eid}"})
    return Response(status_code=204)


@route(router, "/entities/{entity_id}/attrs", ["POST"], 204)
async def add_instances(request: Request, entity_id: str) -> Response:
    """Add attribute instances to the temporal representation of an existing entity."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    await load(rt, entity_id)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be an object of attributes, each one instance or an array of them")
    attrs = instances_in(body, ctx)
    if not attrs:
        raise BadRequestData("the body holds no attribute instances")
    await execute(rt, request, "entity.temporal_write", {"id": entity_id, "attrs": attrs, "create": False})
    return Response(status_code=204)
