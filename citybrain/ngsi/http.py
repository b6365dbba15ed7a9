"""HTTP plumbing of the NGSI-LD API: bodies, @context from Link header or body, tenants, responses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from citybrain.ngsi.errors import (
    BadRequestData,
    InvalidRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from citybrain.ngsi.ldcontext import CORE_URL, ActiveContext, resolve
from citybrain.runtime import CityBrain

JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_TENANT = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


# (method, full path template, handler) of the hot routes the app's fast lane answers (see api.app.FastRoutes)
FAST: list[tuple[str, str, Any]] = []
_PARAM = re.compile(r"\{(\w+)\}")


def route(
    router: APIRouter, path: str, methods: list[str], status: int = 200, fast: bool = False
) -> Callable[[Any], Any]:
    """Register a handler under `path` and `path/` (clients send both); `fast`: also in the fast lane."""

    def deco(fn: Any) -> Any:
        router.add_api_route(path, fn, methods=methods, status_code=status, response_class=Response)
        router.add_api_route(path + "/", fn, methods=methods, status_code=status, response_class=Response,
                             include_in_schema=False)
        if fast:
            FAST.extend((m, router.prefix + path, fn) for m in methods)
        return fn

    return deco


def fast_pattern(template: str) -> re.Pattern[str]:
    """Compile a path template such as /entities/{entity_id} (with or without a trailing slash)."""
    parts = _PARAM.split(template)
    rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(rx + "/?")


def link_context(request: Request) -> str | None:
    """Return the @context URL of the request's Link header, if any."""
    header = request.headers.get("link")
    if not header:
        return None
    for m in _LINK.finditer(header):
        params = m.group(2)
        if "rel" in params and JSONLD_REL in params:
            url = m.group(1).strip()
            if not url or not re.match(r"^https?://", url):
                raise BadRequestData(f"Link: {url!r} is not an http(s) URL of a JSON-LD context")
            return url
    return None


def request_context(request: Request, body: Any = None) -> ActiveContext:
    """Return the request's @context: from the body (application/ld+json) or the Link header."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    link = link_context(request)
    if isinstance(body, dict) and "@context" in body:
        if ctype == "application/json":
            raise BadRequestData("@context in an application/json body: send it as a Link header or use "
                                 "Content-Type application/ld+json")
        if link is not None:
            raise BadRequestData("@context both in the body and in a Link header")
        return resolve(body["@context"])
    if ctype == "application/ld+json" and request.method in ("POST", "PATCH", "PUT") and isinstance(body, dict):
        raise BadRequestData("application/ld+json body without @context")
    return resolve(link) if link else resolve(None)


async def read_body(request: Request, limit: int) -> Any:
    """Read and parse a JSON body; check content type and size."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in ("application/json", "application/ld+json", "application/merge-patch+json"):
        raise UnsupportedMediaType(f"Content-Type {ctype!r}: send application/json or application/ld+json")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
    if not raw.strip():
        raise InvalidRequest("the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON ({exc})") from None


async def tenant_runtime(request: Request, create: bool = False) -> CityBrain:
    """Return the runtime (store) of the request's NGSILD-Tenant; the default tenant is the main runtime."""
    rt: CityBrain = request.app.state.rt
    name = request.headers.get("ngsild-tenant")
    if not name:
        return rt
    if not _TENANT.match(name):
        raise BadRequestData(f"NGSILD-Tenant: {name!r} is not a valid tenant name ([A-Za-z0-9_-], ≤ 64)")
    found: CityBrain = await rt.ports.ngsi_tenants.ensure(name, create)
    return found


def wants_ld(request: Request) -> str:
    """Return the media type to answer with: application/json, application/ld+json or application/geo+json."""
    accept = request.headers.get("accept", "*/*").lower()
    if "application/ld+json" in accept:
        return "application/ld+json"
    if "application/geo+json" in accept:
        return "application/geo+json"
    if any(t in accept for t in ("application/json", "*/*", "application/*")) or not accept.strip():
        return "application/json"
    raise NotAcceptable(f"Accept {accept!r}: citybrain answers application/json, application/ld+json or "
                        "application/geo+json")


def context_value(ctx: ActiveContext) -> Any:
    """Return the @context to put in a response: the request's URLs, or the core context."""
    if not ctx.urls:
        return CORE_URL
    return ctx.urls[0] if len(ctx.urls) == 1 else list(ctx.urls)


def geojson(data: Any, geoproperty: str = "location") -> Any:
    """Return entities as GeoJSON Features (a FeatureCollection for a list)."""

    def feature(e: dict[str, Any]) -> dict[str, Any]:
        geo = e.get(geoproperty)
        geometry = geo.get("value") if isinstance(geo, dict) and "value" in geo else geo
        props = {k: v for k, v in e.items() if k not in ("id", "@context")}
        return {"id": e.get("id"), "type": "Feature", "geometry": geometry, "properties": props}

    if isinstance(data, list):
        return {"type": "FeatureCollection", "features": [feature(e) for e in data]}
    return feature(data)


def ngsi_response(
    request: Request, data: Any, ctx: ActiveContext, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Answer entity data with the @context in the body (ld+json) or as a Link header (json)."""
    media = wants_ld(request)
    hdrs = dict(headers or {})
    if media == "application/ld+json":
        cv = context_value(ctx)
        if isinstance(data, list):
            data = [{**d, "@context": cv} if isinstance(d, dict) else d for d in data]
        elif isinstance(data, dict):
            data = {**data, "@context": cv}
    else:
        if media == "application/geo+json":
            data = geojson(data)
        cv = context_value(ctx)
        url = cv if isinstance(cv, str) else cv[0]
        hdrs["Link"] = f'<{url}>; rel="{JSONLD_REL}"; type="application/ld+json"'
    return Response(orjson.dumps(data), status_code=status, media_type=media, headers=hdrs)


def split_list(value: str | None, name: str) -> list[str] | None:
    """Split a comma-separated parameter; an empty item is BadRequestData."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise BadRequestData(f"{name}: empty item in {value!r}")
    return items


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """Read an integer query parameter within [lo, hi]."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?\d{1,9}", raw):
        raise BadRequestData(f"{name}: {raw!r} is not an integer")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequestData(f"{name}: {value} is not between {lo} and {hi}")
    return value


def options_of(request: Request) -> set[str]:
    """Return the options= and format= flags of a request."""
    opts = set(split_list(request.query_params.get("options"), "options") or [])
    fmt = request.query_params.get("format")
    if fmt:
        opts.add(fmt)
    known = {"keyValues", "simplified", "normalized", "concise", "sysAttrs", "temporalValues", "update",
             "replace", "noOverwrite", "count", "audit", "aggregatedValues"}
    bad = opts - known
    if bad:
        raise BadRequestData(f"options: unknown option(s) {', '.join(sorted(bad))}")
    if "simplified" in opts:
        opts.add("keyValues")
    return opts


def representation(opts: set[str]) -> str:
    """Return normalized, concise or keyValues from the options."""
    if "keyValues" in opts:
        return "keyValues"
    return "concise" if "concise" in opts else "normalized"
