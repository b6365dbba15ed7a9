"""Open311 GeoReport v2 at /open311/v2: services, service definitions, requests, tokens; JSON and XML.

Settings: settings.extra["open311"] = {"jurisdiction_id": "…", "api_keys": ["…"]}; CITYBRAIN_OPEN311_API_KEYS
(comma separated) adds keys. Citizens' names, e-mail addresses and phone numbers are accepted but not stored.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response

from citybrain.api.routes import rt_of
from citybrain.cases.desk import desk_of
from citybrain.cases.model import COLLECTION, FINAL
from citybrain.cases.views import all_cases
from citybrain.clock import parse_time
from citybrain.errors import CityBrainError
from citybrain.open311.spec import (
    Open311Error,
    error,
    render,
    render_object,
    request_view,
    service,
)
from citybrain.runtime import CityBrain

PREFIX = "/open311/v2"
router = APIRouter(prefix=PREFIX, tags=["open311"])
MAX_RESULTS = 1000
DEFAULT_DAYS = 90


def split(name: str) -> tuple[str, str]:
    """Split 'requests.xml' into ('requests', 'xml'); no suffix means JSON."""
    for fmt in ("json", "xml"):
        if name.endswith("." + fmt):
            return name[: -len(fmt) - 1], fmt
    return name, "json"


def config(rt: CityBrain) -> dict[str, Any]:
    """Return this node's Open311 settings (jurisdiction and API keys)."""
    conf: dict[str, Any] = dict(rt.settings.extra.get("open311", {}))
    keys = set(conf.get("api_keys", []))
    keys |= {k.strip() for k in rt.settings.env("OPEN311_API_KEYS").split(",") if k.strip()}
    conf["api_keys"] = keys
    conf.setdefault("jurisdiction_id", rt.settings.node_id)
    return conf


async def answer(fmt: str, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run a handler; every refusal comes back in the spec's error format, in the requested format."""
    try:
        return await work()
    except Open311Error as exc:
        return error(exc, fmt)
    except CityBrainError as exc:
        return error(Open311Error(exc.status if exc.status < 500 else 503, exc.detail), fmt)


def check_jurisdiction(rt: CityBrain, params: dict[str, str]) -> None:
    """Refuse a jurisdiction_id this node does not serve."""
    given = params.get("jurisdiction_id")
    if given and given != config(rt)["jurisdiction_id"]:
        raise Open311Error(404, f"jurisdiction_id {given!r} not found")


def services_of(rt: CityBrain) -> list[dict[str, Any]]:
    """Return every category offered to citizens as an Open311 service."""
    return [service(c) for c in desk_of(rt).catalog.categories.values() if c.open311]


@router.get("/{resource}")
async def collection(request: Request, resource: str) -> Response:
    """GET /services(.json|.xml) and GET /requests(.json|.xml)."""
    name, fmt = split(resource)
    rt = rt_of(request)
    params = dict(request.query_params)

    async def work() -> Response:
        check_jurisdiction(rt, params)
        if name == "services":
            return render(services_of(rt), fmt, "services", "service")
        if name == "requests":
            return render(await find_requests(rt, params), fmt, "service_requests", "request")
        raise Open311Error(404, f"no resource {resource!r}; use services or requests")

    return await answer(fmt, work)


@router.get("/services/{code}")
async def definition(request: Request, code: str) -> Response:
    """GET /services/{service_code}: the service definition (no extra attributes are asked for)."""
    code, fmt = split(code)
    rt = rt_of(request)

    async def work() -> Response:
        check_jurisdiction(rt, dict(request.query_params))
        cat = desk_of(rt).catalog.categories.get(code)
        if cat is None or not cat.open311:
            raise Open311Error(404, f"service_code {code!r} not found")
        return render_object({"service_code": code, "attributes": []}, fmt, "service_definition")

    return await answer(fmt, work)


@router.get("/requests/{request_id}")
async def one_request(request: Request, request_id: str) -> Response:
    """GET /requests/{service_request_id}."""
    rid, fmt = split(request_id)
    rt = rt_of(request)

    async def work() -> Response:
        check_jurisdiction(rt, dict(request.query_params))
        case = await desk_of(rt).read(rid)
        if case is None or case.get("kind") != "case":
            raise Open311Error(404, f"service_request_id {rid!r} not found")
        return render([view(rt, case)], fmt, "service_requests", "request")

    return await answer(fmt, work)


@router.get("/tokens/{token}")
async def token_lookup(request: Request, token: str) -> Response:
    """GET /tokens/{token}: the service_request_id a token became."""
    tid, fmt = split(token)
    rt = rt_of(request)

    async def work() -> Response:
        check_jurisdiction(rt, dict(request.query_params))
        docs = await rt.store.list_docs(COLLECTION, where={"token": tid}, limit=1)
        if not docs:
            raise Open311Error(404, f"token {tid!r} not found")
        return render([{"service_request_id": docs[0].id, "token": tid}], fmt, "service_requests", "request")

    return await answer(fmt, work)


@router.post("/{resource}")
async def create(request: Request, resource: str) -> Response:
    """POST /requests(.json|.xml): a citizen files a service request (api_key required)."""
    name, fmt = split(resource)
    rt = rt_of(request)

    async def work() -> Response:
        if name != "requests":
            raise Open311Error(404, f"cannot POST to {resource!r}; use requests")
        params = dict(request.query_params) | await form(request)
        check_jurisdiction(rt, params)
        if params.get("api_key", "") not in config(rt)["api_keys"]:
            raise Open311Error(403, "api_key is missing or not valid")
        payload = intake_of(rt, params)
        actor = "citizen:" + (params.get("account_id") or params.get("device_id") or "anonymous")
        result = await desk_of(rt).submit(payload, rt.context(actor))
        notice = "awaiting assignment by the command centre" if result.get("queue") else ""
        body = [{"service_request_id": result["id"], "service_notice": notice,
                 "account_id": params.get("account_id") or None, "token": result.get("token")}]
        return render(body, fmt, "service_requests", "request", 201)

    return await answer(fmt, work)


async def form(request: Request) -> dict[str, str]:
    """Parse an application/x-www-form-urlencoded (or JSON object) body."""
    raw = await request.body()
    if not raw:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        import orjson

        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Open311Error(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Open311Error(400, "body must be an object of request fields")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=False, strict_parsing=False))
    except UnicodeDecodeError:
        raise Open311Error(400, "body is not UTF-8 form data") from None


def number(params: dict[str, str], key: str, low: float, high: float) -> float:
    """Return a coordinate parameter or refuse it."""
    try:
        value = float(params[key])
    except ValueError:
        raise Open311Error(400, f"{key} must be a decimal number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise Open311Error(400, f"{key} must be between {low} and {high}")
    return value


def intake_of(rt: CityBrain, params: dict[str, str]) -> dict[str, Any]:
    """Check a POST's fields against the spec and turn them into a case.intake payload."""
    code = params.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    cat = desk_of(rt).catalog.categories.get(code)
    if cat is None or not cat.open311:
        raise Open311Error(404, f"service_code {code!r} not found")
    has_point = "lat" in params or "long" in params
    if not has_point and not params.get("address_string") and not params.get("address_id"):
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    if has_point and not ("lat" in params and "long" in params):
        raise Open311Error(400, "lat and long must be given together")
    description = params.get("description", "")
    if len(description) > 4000:
        raise Open311Error(400, "description is longer than 4000 characters")
    attributes = {k[10:-1]: v for k, v in params.items() if k.startswith("attribute[") and k.endswith("]")}
    for key in ("address_id", "zipcode"):
        if params.get(key):
            attributes[key] = params[key]
    return {"channel": "open311", "category": code, "description": description,
            "lat": number(params, "lat", -90, 90) if has_point else None,
            "lon": number(params, "long", -180, 180) if has_point else None,
            "address": params.get("address_string", ""), "media_url": params.get("media_url", ""),
            "reporter": "citizen:" + (params.get("account_id") or params.get("device_id") or "anonymous"),
            "attributes": attributes}


def view(rt: CityBrain, case: dict[str, Any]) -> dict[str, Any]:
    """Return a case in Open311 request form."""
    desk = desk_of(rt)
    return request_view(case, desk.catalog.categories.get(case["category"]), desk.catalog.router)


async def find_requests(rt: CityBrain, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /requests: by ids, or by service codes, status and dates (default: the last 90 days, 1000 at most)."""
    if params.get("service_request_id"):
        out = []
        for rid in params["service_request_id"].split(",")[:MAX_RESULTS]:
            case = await desk_of(rt).read(rid.strip())
            if case is not None and case.get("kind") == "case":
                out.append(view(rt, case))
        return out
    try:
        end = parse_time(params["end_date"], "end_date") if params.get("end_date") else rt.clock.now()
        start = parse_time(params["start_date"], "start_date") if params.get("start_date") else (
            end - timedelta(days=DEFAULT_DAYS))
    except CityBrainError as exc:
        raise Open311Error(400, exc.detail) from None
    if start > end:
        raise Open311Error(400, "start_date is after end_date")
    statuses = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status must be open, closed or both")
    codes = {c.strip() for c in params.get("service_code", "").split(",") if c.strip()}
    found = []
    for case in await all_cases(rt, {"kind": "case"}):
        created = parse_time(case["created_at"])
        status = "closed" if case["state"] in FINAL else "open"
        if start <= created <= end and (not codes or case["category"] in codes) and (
                not statuses or status in statuses):
            found.append(case)
    found.sort(key=lambda c: c["created_at"], reverse=True)
    return [view(rt, c) for c in found[:MAX_RESULTS]]


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the Open311 GeoReport v2 endpoint to the app."""
    app.include_router(router)
