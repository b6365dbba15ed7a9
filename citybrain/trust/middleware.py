"""The ASGI middleware enforcing authentication, the role x family policy and place scopes on every path.

Credentials: `Authorization: Bearer <token or API key>`, `X-API-Key: <key>`, the `citybrain_token`
cookie (dashboard), `?api_key=` on Open311 writes (as GeoReport v2 specifies) and `?access_token=` on
the event stream (EventSource cannot set headers). With the setting auth=off every request acts as
the local admin. The identity is put in `request.state.identity`.
"""

from __future__ import annotations

import hmac
import math
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from citybrain.confine import check_area
from citybrain.errors import CityBrainError, Forbidden, TooManyRequests
from citybrain.identity import ANONYMOUS, LOCAL_ADMIN, Identity
from citybrain.ports import Ports
from citybrain.trust.policy import PUBLIC, action_of, allowed, command_family, family_of
from citybrain.trust.tokens import Unauthorized

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

LOGIN = "/api/v1/auth/token"


async def authenticate(rt: CityBrain, scope: Scope, family: str) -> Identity | None:
    """Return the identity the request's credentials prove, None if it has none; raise if they are bad."""
    credential = _credential(scope, family)
    if credential is None:
        return None
    service = rt.ports.find(Ports.auth)
    if service is None:
        raise Unauthorized("authentication is not available on this node")
    ident = await service.identify(credential)
    if not credential.startswith("cb_"):
        await _check_not_revoked(rt, service, credential)
    return ident


async def _check_not_revoked(rt: CityBrain, service: Any, token: str) -> None:
    """Refuse an access token issued before its identity's tokens were revoked (a key revoked,
    user.revoke_tokens); the identity document is read from the store at most two seconds ago."""
    from citybrain.trust.auth import AuthService
    from citybrain.trust.tokens import decode

    if not isinstance(service, AuthService):
        return
    claims = decode(token, service._secret, issuer=rt.node_id)  # identify has verified it: cheap HMAC again
    if await service.directory.token_revoked(claims):
        raise Unauthorized("the token was revoked")


def _credential(scope: Scope, family: str) -> str | None:
    """Return the credential a request presents (header, query or cookie), or None."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "x-api-key" in headers:
        return headers["x-api-key"].strip()
    if family == "open311" and "api_key" in query:
        return query["api_key"]
    if family == "dashboard" and "access_token" in query:
        return query["access_token"]
    cookie = SimpleCookie(headers.get("cookie", ""))
    if "citybrain_token" in cookie:
        return cookie["citybrain_token"].value
    return None


# who presents the metrics_token setting: may read /metrics (the family "metrics") and nothing else
SCRAPER = Identity(name="metrics-scraper", role="ops", kind="service")


def scraper(rt: CityBrain, scope: Scope) -> Identity | None:
    """Return SCRAPER if the request sends `Authorization: Bearer <metrics_token>`, else None."""
    want = rt.settings.metrics_token
    if not want:
        return None
    for k, v in scope.get("headers", []):
        if k.lower() == b"authorization" and v[:7].lower() == b"bearer ":
            return SCRAPER if hmac.compare_digest(v[7:].strip(), want.encode()) else None
    return None


def _wants_page(scope: Scope) -> bool:
    """Tell whether a browser asks for a dashboard page (send it to the login page, not a 401 body)."""
    if scope.get("method") != "GET" or not (scope["path"] == "/" or scope["path"].startswith(("/community/", "/case/"))):
        return False
    accept = dict(scope.get("headers", ())).get(b"accept", b"")
    return b"text/html" in accept


class AuthMiddleware:
    """Authenticate, authorize (deny by default) and confine every HTTP and WebSocket request."""

    def __init__(self, app: ASGIApp, rt: CityBrain) -> None:
        self.app, self.rt = app, rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            if scope["path"] == LOGIN and scope.get("method") == "POST":
                self._gate(scope)
            scope.setdefault("state", {})["identity"] = await self.decide(scope)
        except CityBrainError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401 if exc.status == 401 else 4403})
                return
            if exc.status == 401 and _wants_page(scope):
                from urllib.parse import quote

                await RedirectResponse("/login?next=" + quote(scope["path"]), status_code=303)(scope, receive, send)
                return
            headers = {"WWW-Authenticate": 'Bearer realm="citybrain"'} if exc.status == 401 else exc.http_headers()
            response = JSONResponse(exc.to_problem(), status_code=exc.status, headers=headers or None,
                                    media_type="application/problem+json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _gate(self, scope: Scope) -> None:
        """Refuse a login from an address whose password attempts are used up, before routing or reading it.

        The route checks the account and the address again (AuthService.login); this only makes a flood's
        429s cheap: no routing, no body, no exception through the framework."""
        service = self.rt.ports.find(Ports.auth)
        throttle = getattr(service, "throttle", None)
        if throttle is None:
            return
        client = scope.get("client")
        wait = throttle.wait([f"addr:{client[0] if client else '?'}"])
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooManyRequests(f"too many wrong passwords from this address: retry in {retry} s",
                                  retry_after=retry)

    async def decide(self, scope: Scope) -> Identity:
        """Return the identity allowed to make this request, or raise Unauthorized / Forbidden."""
        if self.rt.settings.auth != "on":
            return LOCAL_ADMIN
        path: str = scope["path"]
        method = scope.get("method", "GET")
        action = action_of(method)
        family = family_of(path)
        if family is None:
            raise Forbidden(f"no policy covers {path}; denied by default")
        if family == PUBLIC or (family == "open311" and action == "read"):
            found = await self._try(scope, family)
            return found or ANONYMOUS
        ident = scraper(self.rt, scope) if family == "metrics" else None
        ident = ident or await authenticate(self.rt, scope, family)
        if ident is None:
            raise Unauthorized("credentials required: Authorization: Bearer <token> or X-API-Key")
        if path.startswith("/api/v1/commands/") and action == "write":
            family = self._command_family(path.removeprefix("/api/v1/commands/"), ident)
        if not allowed(ident.role, family, action):
            raise Forbidden(f"role {ident.role} may not {action} {family}")
        await check_area(self.rt, scope, ident, family)
        return ident

    async def _try(self, scope: Scope, family: str) -> Identity | None:
        try:
            return await authenticate(self.rt, scope, family)
        except CityBrainError:
            return None

    def _command_family(self, name: str, ident: Identity) -> str:
        from citybrain.trust.identity import ROLES

        spec = self.rt.commands._specs.get(name) if hasattr(self.rt.commands, "_specs") else None
        known = [r for r in (spec.roles if spec else ()) if r in ROLES]
        if known and ident.role not in known and ident.role != "admin":
            raise Forbidden(f"command {name} is for {', '.join(known)}")
        return command_family(name)


def install(app: Any, rt: CityBrain) -> None:
    """Add the middleware to a FastAPI/Starlette app (outermost, so it runs first)."""
    app.add_middleware(AuthMiddleware, rt=rt)
