"""NGSI-LD batch entity operations: create, upsert, update, delete, merge (201/204/207 as the spec says)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from citybrain.model.urn import is_urn
from citybrain.ngsi.convert import NULL, attr_in, entity_in, merge_attr
from citybrain.ngsi.entities import body_and_context, execute
from citybrain.ngsi.errors import ERRORS, BadRequestData, NgsiError
from citybrain.ngsi.http import options_of, route, tenant_runtime
from citybrain.ngsi.ldcontext import ActiveContext, resolve, to_storage
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/ngsi-ld/v1/entityOperations", tags=["ngsi-ld"])
_STATUS = {"BadRequestData": 400, "ResourceNotFound": 404, "AlreadyExists": 409}


def _error(entity_id: Any, kind: str, detail: str) -> dict[str, Any]:
    return {"entityId": entity_id if isinstance(entity_id, str) else str(entity_id),
            "error": {"type": ERRORS + kind, "title": kind, "status": _STATUS.get(kind, 400), "detail": detail}}


def _result(rt: CityBrain, success: list[str], errors: list[dict[str, Any]], ok_status: int,
            ok_body: Any = None) -> Response:
    if errors:
        cap = max(1, rt.settings.max_errors)  # the first `max_errors` errors, and how many more there were
        doc: dict[str, Any] = {"success": success, "errors": errors[:cap]}
        if len(errors) > cap:
            doc["errorsOmitted"] = len(errors) - cap
        return Response(orjson.dumps(doc), status_code=207, media_type="application/json")
    if ok_status == 204 or ok_body is None:
        return Response(status_code=204)
    return Response(orjson.dumps(ok_body), status_code=ok_status, media_type="application/json")


def _batch(body: Any, rt: CityBrain, what: str = "a batch body must be a non-empty JSON array of entities") -> list[Any]:
    """Return the batch's items; refuse a body that is not a non-empty array or has too many items."""
    if not isinstance(body, list) or not body:
        raise BadRequestData(what)
    if len(body) > rt.settings.max_batch_items:
        raise BadRequestData(f"a batch carries at most {rt.settings.max_batch_items} items, not {len(body)}")
    return body


async def _entities(request: Request, rt: CityBrain) -> tuple[list[dict[str, Any]], list[dict[str, Any]], ActiveContext]:
    """Parse the batch body; return valid entity inputs, per-entity errors and the request context."""
    body, ctx = await body_and_context(request, rt)
    good: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for item in _batch(body, rt):
        try:
            item_ctx = ctx
            if isinstance(item, dict) and "@context" in item:
                item_ctx = resolve(item["@context"])
            eid, etype, attrs = entity_in(item, item_ctx)
            good.append({"id": eid, "type": etype, "attrs": attrs})
        except NgsiError as exc:
            errors.append(_error(item.get("id") if isinstance(item, dict) else None, exc.kind, exc.detail))
    return good, errors, ctx


def _many_errors(result: Any) -> list[dict[str, Any]]:
    return [_error(e["entityId"], e["kind"], e["detail"]) for e in result.errors]


@route(router, "/create", ["POST"], 201)
async def batch_create(request: Request) -> Response:
    """Create entities; 201 with their ids, or 207 with the failures."""
    rt = await tenant_runtime(request, create=True)
    good, errors, _ = await _entities(request, rt)
    result = await execute(rt, request, "entity.write_many", {"entities": good, "mode": "create"}) if good else None
    success = result.success if result else []
    return _result(rt, success, errors + (_many_errors(result) if result else []), 201, success)


@route(router, "/upsert", ["POST"], 201)
async def batch_upsert(request: Request) -> Response:
    """Create or replace (options=update: merge) entities; 201 with created ids, 204 if none new, 207 on errors."""
    rt = await tenant_runtime(request, create=True)
    good, errors, _ = await _entities(request, rt)
    mode = "upsert" if "update" in options_of(request) else "replace"
    known = rt.ports.directory.types
    new = [e["id"] for e in good if e["id"] not in known]
    result = await execute(rt, request, "entity.write_many", {"entities": good, "mode": mode}) if good else None
    success = result.success if result else []
    created = [i for i in dict.fromkeys(new) if i in set(success)]
    errs = errors + (_many_errors(result) if result else [])
    return _result(rt, success, errs, 201 if created else 204, created or None)


@route(router, "/update", ["POST"], 204)
async def batch_update(request: Request) -> Response:
    """Append/overwrite attributes of existing entities (options=noOverwrite keeps existing ones)."""
    rt = await tenant_runtime(request)
    good, errors, _ = await _entities(request, rt)
    if good and "noOverwrite" in options_of(request):
        stored = await rt.store.get_entities([e["id"] for e in good])
        for e in good:
            have = stored[e["id"]].attrs if e["id"] in stored else {}
            e["attrs"] = {n: a for n, a in e["attrs"].items() if n not in have}
    result = await execute(rt, request, "entity.write_many", {"entities": good, "mode": "update"}) if good else None
    return _result(rt, result.success if result else [], errors + (_many_errors(result) if result else []), 204)


@route(router, "/merge", ["POST"], 204)
async def batch_merge(request: Request) -> Response:
    """Merge-patch existing entities."""
    rt = await tenant_runtime(request)
    body, ctx = await body_and_context(request, rt)
    body = _batch(body, rt)
    good: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    drops: dict[str, list[str]] = {}
    ids = [x.get("id") for x in body if isinstance(x, dict) and is_urn(x.get("id"))]
    stored = await rt.store.get_entities([i for i in ids if isinstance(i, str)])
    for item in body:
        try:
            if not isinstance(item, dict):
                raise BadRequestData("an entity must be a JSON object")
            ictx = resolve(item["@context"]) if "@context" in item else ctx
            nulls = [n for n, v in item.items() if v == NULL or (isinstance(v, dict) and v.get("value") == NULL)]
            eid, _, attrs = entity_in({"type": "_", **{k: v for k, v in item.items() if k not in nulls}}, ictx)
            have = stored.get(eid)
            if have is None:
                errors.append(_error(eid, "ResourceNotFound", f"entity {eid} not found"))
                continue
            drops[eid] = [s for s in (to_storage(n, ictx) for n in nulls) if s in have.attrs]
            merged = {n: attr_in(n, merge_attr(have.attrs[n], a), ictx) if n in have.attrs else a
                      for n, a in attrs.items()}
            good.append({"id": eid, "type": have.type, "attrs": merged, "place": have.place})
        except NgsiError as exc:
            errors.append(_error(item.get("id") if isinstance(item, dict) else None, exc.kind, exc.detail))
    result = await execute(rt, request, "entity.write_many", {"entities": good, "mode": "update"}) if good else None
    for eid, names in drops.items():
        if names:
            await execute(rt, request, "entity.delete_attrs", {"id": eid, "names": names})
    return _result(rt, result.success if result else [], errors + (_many_errors(result) if result else []), 204)


@route(router, "/delete", ["POST"], 204)
async def batch_delete(request: Request) -> Response:
    """Delete entities by id; 204, or 207 naming the ones that were not found."""
    rt = await tenant_runtime(request)
    body, _ = await body_and_context(request, rt)
    body = _batch(body, rt, "a batch delete body must be a non-empty JSON array of entity ids")
    errors = [_error(i, "BadRequestData", f"{i!r} is not an entity id") for i in body if not is_urn(i)]
    ids = [i for i in body if is_urn(i)]
    result = await execute(rt, request, "entity.delete_many", {"ids": ids}) if ids else None
    return _result(rt, result.success if result else [], errors + (_many_errors(result) if result else []), 204)
