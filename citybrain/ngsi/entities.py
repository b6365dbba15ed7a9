"""NGSI-LD entity routes: create, retrieve, delete, append, update, partial update, replace, merge."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from citybrain.errors import CityBrainError
from citybrain.model.entity import Entity
from citybrain.model.urn import is_urn
from citybrain.ngsi.convert import (
    META,
    NULL,
    attr_in,
    attrs_in,
    dataset_of,
    entity_in,
    entity_out,
    entity_type_in,
    instance_key,
    instance_keys,
    merge_attr,
    split_key,
)
from citybrain.ngsi.errors import BadRequestData, ResourceNotFound, from_citybrain
from citybrain.ngsi.http import (
    options_of,
    read_body,
    representation,
    request_context,
    route,
    split_list,
    tenant_runtime,
)
from citybrain.ngsi.ldcontext import ActiveContext, to_storage
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])


def actor(request: Request) -> str:
    """Return who is acting, for the command context: the authenticated identity (see actor_of)."""
    from citybrain.api.routes import actor_of

    return actor_of(request)


async def execute(rt: CityBrain, request: Request, name: str, payload: Any) -> Any:
    """Run a command for an NGSI-LD request; citybrain errors become NGSI-LD problems."""
    try:
        from citybrain.api.routes import context_of

        return await rt.execute(name, payload, context_of(request, rt))
    except CityBrainError as exc:
        raise from_citybrain(exc) from None


def check_entity_id(entity_id: str) -> str:
    """Raise BadRequestData unless the path's entity id is a URI."""
    if not is_urn(entity_id):
        raise BadRequestData(f"{entity_id!r} is not a URI such as urn:ngsi-ld:Type:id")
    return entity_id


async def load(rt: CityBrain, entity_id: str) -> Entity:
    """Return an entity or raise ResourceNotFound."""
    found = await rt.store.get_entity(check_entity_id(entity_id))
    if found is None:
        raise ResourceNotFound(f"entity {entity_id} not found")
    return found


def instance_label(body: Any) -> str:
    """Return ' (datasetId …)' for an error about a non-default attribute instance."""
    return f" (datasetId {body['datasetId']})" if isinstance(body, dict) and "datasetId" in body else ""


def names(request: Request, param: str, ctx: ActiveContext) -> set[str] | None:
    """Return the stored names listed in a comma-separated attrs/pick/omit parameter."""
    items = split_list(request.query_params.get(param), param)
    return None if items is None else {to_storage(a, ctx) for a in items}


async def body_and_context(request: Request, rt: CityBrain) -> tuple[Any, ActiveContext]:
    """Read the JSON body and the request's @context."""
    body = await read_body(request, rt.settings.max_body_bytes)
    return body, request_context(request, body)


@route(router, "/entities", ["POST"], 201)
async def create_entity(request: Request) -> Response:
    """Create an entity (201 with Location; 409 AlreadyExists)."""
    rt = await tenant_runtime(request, create=True)
    body, ctx = await body_and_context(request, rt)
    eid, etype, attrs = entity_in(body, ctx)
    await execute(rt, request, "entity.write", {"entity": {"id": eid, "type": etype, "attrs": attrs}, "mode": "create"})
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/entities/{eid}"})


@route(router, "/entities/{entity_id}", ["GET"], fast=True)
async def retrieve_entity(request: Request, entity_id: str) -> Response:
    """Return one entity in the request's context and representation."""
    from citybrain.ngsi.http import ngsi_response

    rt = await tenant_runtime(request)
    ctx = request_context(request)
    opts = options_of(request)
    entity = await load(rt, entity_id)
    out = entity_out(entity, ctx, representation(opts), names(request, "attrs", ctx), names(request, "pick", ctx),
                     names(request, "omit", ctx), "sysAttrs" in opts)
    return ngsi_response(request, out, ctx)


@route(router, "/entities/{entity_id}", ["DELETE"], 204)
async def delete_entity(request: Request, entity_id: str) -> Response:
    """Delete an entity (its history stays)."""
    rt = await tenant_runtime(request)
    await load(rt, entity_id)
    await execute(rt, request, "entity.delete", {"id": entity_id})
    return Response(status_code=204)


def partial(updated: list[str], not_updated: list[dict[str, str]], ctx: ActiveContext) -> Response:
    """204 when everything was updated, else 207 with the UpdateResult."""
    if not not_updated:
        return Response(status_code=204)
    body = {"updated": updated, "notUpdated": not_updated}
    return Response(orjson.dumps(body), status_code=207, media_type="application/json")


@route(router, "/entities/{entity_id}/attrs", ["POST"], 204)
async def append_attrs(request: Request, entity_id: str) -> Response:
    """Append attributes (overwriting unless options=noOverwrite)."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    entity = await load(rt, entity_id)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object of attributes")
    attrs = attrs_in(body, ctx)
    skipped: list[dict[str, str]] = []
    if "noOverwrite" in options_of(request):
        for name in [n for n in attrs if n in entity.attrs]:
            skipped.append({"attributeName": split_key(name)[0], "reason": "attribute exists and options=noOverwrite"})
            del attrs[name]
    if attrs:
        await execute(rt, request, "entity.update", {"id": entity.id, "attrs": attrs})
    return partial(sorted(attrs), skipped, ctx)


@route(router, "/entities/{entity_id}/attrs", ["PATCH"], 204, fast=True)
async def update_attrs(request: Request, entity_id: str) -> Response:
    """Update existing attributes; attributes the entity lacks are reported in a 207."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    entity = await load(rt, entity_id)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object of attributes")
    attrs = attrs_in(body, ctx)
    missing = [{"attributeName": split_key(n)[0], "reason": "attribute not found"} for n in attrs
               if n not in entity.attrs]
    attrs = {n: a for n, a in attrs.items() if n in entity.attrs}
    if attrs:
        await execute(rt, request, "entity.update", {"id": entity.id, "attrs": attrs})
    return partial(sorted(attrs), missing, ctx)


def patch_of(old: dict[str, Any] | None, merged: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Return the store patch (store.SetAttrs merge) of the stored `keys` a request changed: their merged
    values, None where the merge removed one, and the type; a new attribute or a new type: every key.

    The request is checked by merging it into the attribute as read; the store then merges only these keys
    into the attribute as it is at commit, so a concurrent patch of other keys is kept, not overwritten."""
    if old is None or merged.get("type") != old.get("type"):
        keys = set(merged) | set(old or ())
    return {k: merged.get(k) for k in keys | {"type"}}


@route(router, "/entities/{entity_id}/attrs/{attr}", ["PATCH"], 204, fast=True)
async def partial_update(request: Request, entity_id: str, attr: str) -> Response:
    """Merge a fragment into one existing attribute (atomically: the store merges it at commit)."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    entity = await load(rt, entity_id)
    if not isinstance(body, dict):
        body = {"value": body}
    name = instance_key(to_storage(attr, ctx), dataset_of(body, attr))
    if name not in entity.attrs:
        raise ResourceNotFound(f"attribute {attr}{instance_label(body)} not found on {entity_id}")
    fragment = {k: v for k, v in body.items() if k != "@context"}
    old = entity.attrs[name]
    merged = attr_in(attr, merge_attr(old, fragment), ctx)
    patch = patch_of(old, merged, {k if k in META else to_storage(k, ctx) for k in fragment})
    await execute(rt, request, "entity.update",
                  {"id": entity.id, "attrs": {name: patch}, "merge": "patch_existing"})
    return Response(status_code=204)


@route(router, "/entities/{entity_id}/attrs/{attr}", ["PUT"], 204)
async def replace_attr(request: Request, entity_id: str, attr: str) -> Response:
    """Replace one existing attribute."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    entity = await load(rt, entity_id)
    name = instance_key(to_storage(attr, ctx), dataset_of(body, attr))
    if name not in entity.attrs:
        raise ResourceNotFound(f"attribute {attr}{instance_label(body)} not found on {entity_id}")
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
    await execute(rt, request, "entity.update", {"id": entity.id, "attrs": {name: attr_in(attr, body, ctx)}})
    return Response(status_code=204)


@route(router, "/entities/{entity_id}/attrs/{attr}", ["DELETE"], 204)
async def delete_attr(request: Request, entity_id: str, attr: str) -> Response:
    """Delete one attribute."""
    rt = await tenant_runtime(request)
    ctx = request_context(request)
    entity = await load(rt, entity_id)
    stored = to_storage(attr, ctx)
    dataset = request.query_params.get("datasetId")
    if dataset is not None and not is_urn(dataset):
        raise BadRequestData(f"datasetId: {dataset!r} is not a URI")
    if request.query_params.get("deleteAll") == "true":
        names = instance_keys(entity.attrs, stored)
    else:
        names = [instance_key(stored, dataset)]
    names = [n for n in names if n in entity.attrs or (n == "location" and entity.location is not None)]
    if not names:
        label = f" (datasetId {dataset})" if dataset else ""
        raise ResourceNotFound(f"attribute {attr}{label} not found on {entity_id}")
    await execute(rt, request, "entity.delete_attrs", {"id": entity.id, "names": names})
    return Response(status_code=204)


async def entity_and_body(request: Request, entity_id: str) -> tuple[CityBrain, dict[str, Any], ActiveContext, Entity]:
    """Load the entity a PUT/PATCH names and its JSON-object body (whose id, if any, must match)."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    entity = await load(rt, entity_id)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object")
    if "id" in body and body["id"] != entity.id:
        raise BadRequestData("id in the body differs from the id in the path")
    return rt, body, ctx, entity


@route(router, "/entities/{entity_id}", ["PUT"], 204)
async def replace_entity(request: Request, entity_id: str) -> Response:
    """Replace all attributes of an entity (its id stays)."""
    rt, body, ctx, entity = await entity_and_body(request, entity_id)
    etype = entity_type_in(body["type"], ctx) if "type" in body else entity.type
    attrs = attrs_in(body, ctx)
    await execute(rt, request, "entity.write",
                  {"entity": {"id": entity.id, "type": etype, "attrs": attrs, "place": entity.place}, "mode": "replace"})
    return Response(status_code=204)


@route(router, "/entities/{entity_id}", ["PATCH"], 204)
async def merge_entity(request: Request, entity_id: str) -> Response:
    """Merge-patch an entity: new attributes are added, existing ones merged, urn:ngsi-ld:null deletes."""
    rt, body, ctx, entity = await entity_and_body(request, entity_id)
    await merge_into(rt, request, entity, body, ctx)
    return Response(status_code=204)


async def merge_into(rt: CityBrain, request: Request, entity: Entity, body: dict[str, Any], ctx: ActiveContext) -> None:
    """Apply a merge-patch payload to a stored entity."""
    drop: list[str] = []
    write: dict[str, Any] = {}
    for name, raw in attrs_in(body, ctx, allow_null=True).items():
        value = raw.get("value", raw.get("object"))
        if value == NULL or value is None:
            if name in entity.attrs:
                drop.append(name)
            continue
        old = entity.attrs.get(name)
        write[name] = patch_of(old, attr_in(name, merge_attr(old, raw), ctx) if old else raw, set(raw))
    if write:  # merged by the store at commit (patch_of), so concurrent merge-patches keep each other's keys
        await execute(rt, request, "entity.update", {"id": entity.id, "attrs": write, "merge": "patch"})
    if drop:
        await execute(rt, request, "entity.delete_attrs", {"id": entity.id, "names": drop})
