"""Mount the NGSI-LD API: routers, the @context cache listing, and ProblemDetails for every error."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from citybrain.api.app import FastRoute
from citybrain.errors import CityBrainError
from citybrain.ngsi import batch, entities, queries, subscriptions, temporal
from citybrain.ngsi.errors import (
    BadRequestData,
    NgsiError,
    ResourceNotFound,
    from_citybrain,
    problem_response,
)
from citybrain.ngsi.http import FAST, fast_pattern, route
from citybrain.ngsi.ldcontext import CORE_URL, cached_urls, load_url
from citybrain.runtime import CityBrain

log = logging.getLogger(__name__)
PREFIX = "/ngsi-ld/"
contexts = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])


@route(contexts, "/jsonldContexts", ["GET"])
async def list_contexts(request: Request) -> Response:
    """List the cached @contexts (details=true: with kind and local id)."""
    urls = sorted(set(cached_urls()))
    if request.query_params.get("details") == "true":
        body: Any = [{"URL": u, "localId": u.rsplit("/", 1)[-1], "kind": "Cached", "createdAt": "1970-01-01T00:00:00Z"}
                     for u in urls]
    else:
        body = urls
    return Response(orjson.dumps(body), media_type="application/json")


@route(contexts, "/jsonldContexts/{context_id:path}", ["GET"])
async def get_context(request: Request, context_id: str) -> Response:
    """Return one cached @context by URL or local id."""
    for url in cached_urls():
        if context_id in (url, url.rsplit("/", 1)[-1]):
            return Response(orjson.dumps({"@context": load_url(url)}), media_type="application/ld+json")
    raise ResourceNotFound(f"@context {context_id} is not cached")


@route(contexts, "/jsonldContexts/{context_id:path}", ["DELETE"], 204)
async def delete_context(request: Request, context_id: str) -> Response:
    """Cached contexts ship with citybrain: deleting the core one needs reload=true, others cannot go."""
    if context_id in (CORE_URL, CORE_URL.rsplit("/", 1)[-1]):
        if request.query_params.get("reload") != "true":
            raise BadRequestData("the core @context can only be reloaded (reload=true), not deleted")
        load_url.cache_clear()
        return Response(status_code=204)
    raise BadRequestData("cached @contexts ship with citybrain and cannot be deleted")


def _is_ngsi(request: Request) -> bool:
    return request.url.path.startswith(PREFIX)


def install_errors(app: FastAPI) -> None:
    """Answer errors under /ngsi-ld/ with NGSI-LD ProblemDetails; leave other paths to the core handlers."""
    core_cb = app.exception_handlers.get(CityBrainError)
    core_val = app.exception_handlers.get(RequestValidationError)
    core_http = app.exception_handlers.get(StarletteHTTPException)

    async def on_ngsi(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NgsiError)
        return problem_response(exc)

    async def on_cb(request: Request, exc: Exception) -> Response:
        if _is_ngsi(request) or core_cb is None:
            assert isinstance(exc, CityBrainError)
            return problem_response(from_citybrain(exc))
        return await core_cb(request, exc)  # type: ignore[no-any-return,misc]

    async def on_validation(request: Request, exc: Exception) -> Response:
        if _is_ngsi(request) or core_val is None:
            return problem_response(BadRequestData(f"invalid request: {exc}"))
        return await core_val(request, exc)  # type: ignore[no-any-return,misc]

    async def on_http(request: Request, exc: Exception) -> Response:
        if _is_ngsi(request) or core_http is None:
            assert isinstance(exc, StarletteHTTPException)
            err = NgsiError(str(exc.detail))
            err.status = exc.status_code
            err.kind = {404: "ResourceNotFound", 405: "OperationNotSupported", 413: "PayloadTooLarge"}.get(
                exc.status_code, "InvalidRequest" if exc.status_code < 500 else "InternalError")
            if exc.status_code == 404:
                err.detail = f"no NGSI-LD resource at {request.url.path}"
            return problem_response(err)
        return await core_http(request, exc)  # type: ignore[no-any-return,misc]

    app.add_exception_handler(NgsiError, on_ngsi)
    app.add_exception_handler(CityBrainError, on_cb)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def fast_error(request: Request, exc: Exception) -> Response:
    """Answer the fast lane's errors as the exception handlers of `install_errors` would."""
    if isinstance(exc, NgsiError):
        return problem_response(exc)
    if isinstance(exc, CityBrainError):
        return problem_response(from_citybrain(exc))
    raise exc


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the NGSI-LD routers and error handling to the app, and the hot entity routes to its fast lane."""
    install_errors(app)
    for module in (entities, queries, batch, subscriptions, temporal):
        app.include_router(module.router)
    app.include_router(contexts)
    fast = getattr(app.state, "fast_routes", None)
    if fast is not None:
        fast.extend(FastRoute(method, fast_pattern(path), fn, fast_error) for method, path, fn in FAST)
