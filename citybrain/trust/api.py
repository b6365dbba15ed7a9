"""Trust HTTP API: tokens, who-am-I, users, the data catalog, grants and dataset downloads under grants."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.confine import identity_of, scope_of
from citybrain.errors import Forbidden, NotFound, ValidationError
from citybrain.ports import Ports
from citybrain.runtime import CityBrain
from citybrain.trust import middleware
from citybrain.trust.auth import AuthService
from citybrain.trust.catalog import get_dataset, list_datasets
from citybrain.trust.data import FORMATS, serve
from citybrain.trust.grants import GRANT_DOCS, GRANTS, Grant, RateLimiter, check_usable, get_grant
from citybrain.trust.identity import IDENTITIES
from citybrain.trust.tokens import Unauthorized

router = APIRouter(prefix="/api/v1", tags=["trust"])
limiter = RateLimiter()
OFFICERS = ("admin", "data_officer", "auditor")


@router.post("/auth/token")
async def token(request: Request) -> Response:
    """Exchange an API key or a username and password (JSON or form) for a signed access token."""
    auth = rt_of(request).ports.find_own(Ports.auth, AuthService)
    if auth is None:
        raise Unauthorized("authentication is not available on this node")
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:  # UTF-8, percent-escapes decoding to UTF-8 too, a handful of fields
            body: Any = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True, errors="strict",
                                       max_num_fields=16))
        except ValueError:  # UnicodeDecodeError included
            raise ValidationError("body: not a valid application/x-www-form-urlencoded form "
                                  "(UTF-8, at most 16 fields)", field="body") from None
    else:
        body = await read_json(request)
    client = request.client.host if request.client else None
    return json(await auth.login(body if isinstance(body, dict) else {}, client))


COOKIE = "citybrain_token"
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # controls, spaces and backslashes (browsers read \ as /)


def safe_next(value: object) -> str:
    """Return `value` if it is a path on this site (`/…`, not `//host` or `/\\host`), else "/"."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or _UNSAFE.search(value):
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


@router.post("/auth/session")
async def session(request: Request) -> Response:
    """Log the dashboard in: check {api_key} or {username, password} (JSON or form) and set the access token
    as an HttpOnly, SameSite=Lax cookie (Secure over https); answer where to go next (`next`, a path on this
    site only) and who logged in. The token itself is not in the body: the page's scripts never hold it."""
    auth = rt_of(request).ports.find_own(Ports.auth, AuthService)
    if auth is None:
        raise Unauthorized("authentication is not available on this node")
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body: Any = dict(parse_qsl((await request.body()).decode()))
    else:
        body = await read_json(request)
    body = body if isinstance(body, dict) else {}
    out = await auth.login(body)
    response = json({"actor": out["actor"], "expires_in": out["expires_in"], "next": safe_next(body.get("next"))})
    response.set_cookie(COOKIE, out["access_token"], max_age=int(out["expires_in"]), path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/auth/logout", status_code=204)
async def logout(request: Request) -> Response:
    """Drop the dashboard's token cookie (the token itself stays valid until it expires or is revoked)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.get("/auth/whoami")
async def whoami(request: Request) -> Response:
    """Return the authenticated identity, its actor string and its area."""
    ident = identity_of(request)
    return json(msgspec.to_builtins(ident) | {"actor": ident.actor})


@router.get("/users")
async def users(request: Request) -> Response:
    """List identities (never their secrets)."""
    docs = await rt_of(request).store.list_docs(IDENTITIES, limit=10000)
    return json([{k: v for k, v in d.data.items() if k != "password"} for d in docs])


@router.get("/catalog")
async def catalog(request: Request) -> Response:
    """List the data catalog."""
    return json(await list_datasets(rt_of(request)))


@router.get("/catalog/{dataset_id}")
async def dataset(request: Request, dataset_id: str) -> Response:
    """Return one dataset of the catalog."""
    return json(await get_dataset(rt_of(request), dataset_id))


@router.post("/catalog", status_code=201)
async def publish(request: Request) -> Response:
    """Add or change a dataset (data officer)."""
    rt = rt_of(request)
    result = await rt.execute("catalog.publish", await read_json(request), context_of(request))
    return json(result, status=201)


@router.get("/grants")
async def grants(request: Request, status: str | None = None) -> Response:
    """List grants: every grant for officers and auditors, one's own grants otherwise."""
    ident = identity_of(request)
    where: dict[str, Any] = {} if ident.role in OFFICERS else {"grantee": ident.name}
    if status:
        where["status"] = status
    docs = await rt_of(request).store.list_docs(GRANTS, where=where or None, limit=10000)
    return json([d.data for d in docs])


@router.post("/grants", status_code=201)
async def request_grant(request: Request) -> Response:
    """Request a grant of a dataset."""
    rt = rt_of(request)
    result = await rt.execute("grant.request", await read_json(request), context_of(request))
    return json(result, status=201, headers={"Location": f"/api/v1/grants/{result['id']}"})


@router.get("/grants/{grant_id}")
async def grant(request: Request, grant_id: str) -> Response:
    """Return one grant (officers, or its grantee)."""
    found, _ = await get_grant(rt_of(request), grant_id)
    ident = identity_of(request)
    if ident.role not in OFFICERS and found.grantee != ident.name:
        raise NotFound(f"unknown grant {grant_id}", field="grant")
    return json(found)


@router.post("/grants/{grant_id}/{action}")
async def decide(request: Request, grant_id: str, action: str) -> Response:
    """Approve (data officer) or revoke a grant; the body may narrow an approval."""
    if action not in ("approve", "revoke"):
        raise NotFound(f"no grant action {action}", field="action")
    rt = rt_of(request)
    raw = await request.body()
    body = (await read_json(request)) if raw.strip() else {}
    result = await rt.execute(f"grant.{action}", {**body, "id": grant_id}, context_of(request))
    return json(result)


@router.get("/data/{dataset_id}")
async def data(request: Request, dataset_id: str, format: str = Query("json", description=", ".join(FORMATS)),
               grant: str | None = None, limit: int = Query(10000, ge=1, le=100000)) -> Response:
    """Download a dataset under a grant: fields and area filtered, rate limited, provenance attached."""
    rt = rt_of(request)
    ident = identity_of(request)
    ds = await get_dataset(rt, dataset_id)
    use: Grant | None = None
    if grant is not None:
        use, _ = await get_grant(rt, grant)
    elif ds.classification != "open" and ident.role not in ("admin", "data_officer"):
        mine = await rt.store.list_docs(GRANTS, where={"grantee": ident.name, "dataset": ds.id,
                                                       "status": "approved"}, limit=100)
        live = [GRANT_DOCS.load(d.data) for d in mine if d.data["expires"] > rt.now()]
        if not live:
            raise Forbidden(f"dataset {ds.id} is {ds.classification}: request a grant first", field="grant")
        use = live[-1]
    if use is not None:
        check_usable(use, ident.name, ds.id, rt.now())
        limiter.hit(use.id, use.rate_limit)
    body, headers = await serve(rt, context_of(request), ds, use, scope_of(request), format, limit)
    if format != "json":
        headers["Content-Disposition"] = f'attachment; filename="{ds.id}.{format}"'
    return Response(body, media_type=FORMATS[format], headers=headers)


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the trust routes and the enforcement middleware (which covers every path)."""
    app.include_router(router)
    middleware.install(app, rt)
