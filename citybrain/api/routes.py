"""The core API (/api/v1): places, entities, history, observations, events, dead letters, commands."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from fastapi import APIRouter, Body, Query, Request, Response

from citybrain.clock import normalise_time
from citybrain.context import Context
from citybrain.errors import NotFound, ValidationError
from citybrain.runtime import CityBrain
from citybrain.store import EntityQuery

router = APIRouter(prefix="/api/v1", tags=["city"])


def rt_of(request: Request) -> CityBrain:
    """Return the runtime serving this request."""
    rt: CityBrain = request.app.state.rt
    return rt


def actor_of(request: Request) -> str:
    """Return who is acting: the authenticated identity as "role[:department|place]:name".

    With auth=off (local demo) the request acts as the local admin, and X-Citybrain-Actor may name
    another actor for demonstrations; with auth=on that header is ignored."""
    ident = getattr(request.state, "identity", None)
    actor = getattr(ident, "actor", None)
    settings = request.app.state.rt.settings
    if settings.auth != "on":
        return request.headers.get("x-citybrain-actor") or actor or "admin:local"
    return actor if isinstance(actor, str) and ident is not None and ident.role != "anonymous" else "anonymous"


def context_of(request: Request, rt: CityBrain | None = None) -> Context:
    """Return the context of a request's commands on `rt` (default: the node's runtime; an NGSI-LD tenant's
    otherwise): its actor, confined to its identity's place (auth on)."""
    ident = getattr(request.state, "identity", None)
    area = getattr(ident, "place", None) if rt_of(request).settings.auth == "on" else None
    return (rt or rt_of(request)).context(actor_of(request), area=area if isinstance(area, str) else None)


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Return a fast JSON response."""
    return Response(orjson.dumps(msgspec.to_builtins(data)), status_code=status, media_type="application/json",
                    headers=headers)


async def read_json(request: Request) -> Any:
    """Parse the request body as JSON or raise a ValidationError."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body: invalid JSON ({exc})", field="body") from None


@router.get("/places")
async def places(request: Request, root: str | None = None) -> Response:
    """Return the place hierarchy (city → district → subdistrict → community → grid)."""
    index = rt_of(request).ports.places
    if root is not None and root not in index:
        raise NotFound(f"unknown place {root}", field="root")
    return json(index.tree(root))


@router.get("/places/{place_id}")
async def place(request: Request, place_id: str) -> Response:
    """Return one place with its parents, children and grid cells."""
    rt = rt_of(request)
    index = rt.ports.places
    entity = index.get(place_id)
    if entity is None:
        raise NotFound(f"unknown place {place_id}", field="place_id")
    fresh = await rt.store.get_entity(place_id)
    return json({"entity": (fresh or entity).to_ngsi(), "ancestors": index.ancestors(place_id),
                 "children": sorted(index.children.get(place_id, [])), "cells": len(index.cells_of(place_id))})


@router.get("/entities")
async def entities(
    request: Request,
    type: str | None = None,
    place: str | None = Query(None, description="a place: entities in it or in any place below it"),
    limit: int = Query(100, ge=1, le=10000),
    offset: int = Query(0, ge=0),
) -> Response:
    """List entities by type and place."""
    rt = rt_of(request)
    places = None
    if place is not None:
        index = rt.ports.places
        if place not in index:
            raise NotFound(f"unknown place {place}", field="place")
        places = [place, *index.descendants(place)]
    q = EntityQuery(types=type.split(",") if type else None, places=places, limit=limit, offset=offset)
    found = await rt.store.query_entities(q)
    total = await rt.store.count_entities(q)
    return json([e.to_ngsi() | {"place": e.place} for e in found], headers={"X-Total-Count": str(total)})


@router.get("/entities/{entity_id}")
async def entity(request: Request, entity_id: str) -> Response:
    """Return one entity with its current attribute values."""
    found = await rt_of(request).store.get_entity(entity_id)
    if found is None:
        raise NotFound(f"entity {entity_id} not found", field="entity_id")
    return json(found.to_ngsi() | {"place": found.place})


@router.get("/entities/{entity_id}/history")
async def history(
    request: Request,
    entity_id: str,
    attr: str | None = None,
    since: str | None = None,
    until: str | None = None,
    lastN: int | None = Query(None, ge=1, le=100000),
    limit: int = Query(10000, ge=1, le=100000),
) -> Response:
    """Return past values of an entity's attributes, oldest first."""
    rt = rt_of(request)
    if entity_id not in rt.ports.directory.types:
        raise NotFound(f"entity {entity_id} not found", field="entity_id")
    rows = await rt.store.history(
        entity_id, attr, normalise_time(since, "since") if since else None,
        normalise_time(until, "until") if until else None, lastN, limit)
    return json(rows)


@router.post("/entities", status_code=201)
async def create_entity(request: Request, mode: str = "create") -> Response:
    """Create (or upsert/replace) an entity from {id, type, attrs, place, location}."""
    rt = rt_of(request)
    body = await read_json(request)
    ctx = context_of(request)
    entity_id = await rt.execute("entity.write", {"entity": body, "mode": mode}, ctx)
    return json({"id": entity_id}, status=201, headers={"Location": f"/api/v1/entities/{entity_id}"})


@router.patch("/entities/{entity_id}/attrs", status_code=204)
async def patch_attrs(request: Request, entity_id: str) -> Response:
    """Merge attributes into an entity."""
    rt = rt_of(request)
    body = await read_json(request)
    await rt.execute("entity.update", {"id": entity_id, "attrs": body}, context_of(request))
    return Response(status_code=204)


@router.delete("/entities/{entity_id}", status_code=204)
async def remove_entity(request: Request, entity_id: str) -> Response:
    """Delete an entity (its history is kept)."""
    rt = rt_of(request)
    await rt.execute("entity.delete", {"id": entity_id}, context_of(request))
    return Response(status_code=204)


@router.post("/observations")
async def observations(request: Request) -> Response:
    """Bulk ingest: a JSON array of observations. 200 all stored, 207 some rejected, 400 none stored."""
    rt = rt_of(request)
    body = await read_json(request)
    items = body if isinstance(body, list) else [body]
    cap = rt.settings.max_batch_items
    if len(items) > cap:
        raise ValidationError(f"body: more than {cap} observations in one request", field="body")
    report = await rt.ports.ingest.submit(items, context_of(request), "http")
    status = 200 if not report.rejected else (207 if report.stored else 400)
    return json(report, status=status)


@router.get("/events")
async def events(
    request: Request,
    after: int = Query(0, ge=0),
    type: str | None = None,
    limit: int = Query(100, ge=1, le=10000),
) -> Response:
    """Return the event history after a sequence number, optionally of one type prefix."""
    return json(await rt_of(request).store.events(after, type, limit))


@router.get("/deadletters")
async def deadletters(request: Request, limit: int = Query(100, ge=1, le=10000), all: bool = False) -> Response:
    """List messages that could not be processed, with the reason."""
    return json(await rt_of(request).store.deadletters(limit, include_replayed=all))


@router.post("/deadletters/replay")
async def replay_deadletters(request: Request) -> Response:
    """Try dead-lettered observations again (e.g. after provisioning the sensor)."""
    from citybrain.ingest.deadletters import replay

    return json(await replay(rt_of(request), ctx=context_of(request)))


@router.get("/commands")
async def list_commands(request: Request) -> Response:
    """List the commands this node accepts."""
    return json([{"name": s.name, "summary": s.summary} for s in rt_of(request).commands])


@router.post("/commands/{name}")
async def run_command(request: Request, name: str, payload: dict[str, Any] = Body(...)) -> Response:
    """Run any registered command with a JSON payload; the result is returned."""
    rt = rt_of(request)
    ctx = context_of(request)
    result = await rt.execute(name, payload, ctx)
    return json({"context": ctx.to_dict(), "result": result})


@router.get("/stats")
async def stats(request: Request) -> Response:
    """Counts of entities by type and observations ingested since start."""
    rt = rt_of(request)
    ingest = rt.ports.ingest
    return json({"entities": await rt.store.entity_types(), "ingested_by_type": dict(ingest.stored_by_type),
                 "rejected": ingest.rejected, "history_rows": await rt.store.history_count()})
