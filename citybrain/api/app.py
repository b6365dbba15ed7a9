"""Build the FastAPI application around a runtime."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citybrain import __version__
from citybrain.api import introspection, problems, routes
from citybrain.api.problems import problem
from citybrain.components import mounts, resolve
from citybrain.runtime import CityBrain

# What is mounted, in order: derived from the components' manifests (citybrain/<name>/manifest.py). Each entry
# names `def mount(app: FastAPI, rt: CityBrain) -> None`: "module" (its `mount`) or "module:function".
EXTENSIONS: list[str] = mounts()


class BodyTooLarge(StarletteHTTPException):
    """Raised by BodyLimit's receive when a request body passes the limit (the 413 is already sent)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


def _too_large(limit: int) -> Response:
    """The 413 problem, with Connection: close so that the server stops reading the rest of the body."""
    response = problem(413, "PayloadTooLarge", f"request body over {limit} bytes")
    response.headers["connection"] = "close"
    return response


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, counting the bytes as they arrive (pure ASGI).

    A declared Content-Length over the limit is refused before the app runs. Otherwise (chunked transfer
    encoding, or a Content-Length that lies) the app's `receive` counts what arrives: the message that passes
    the limit is not handed to the app; the 413 is sent at once (if no response has started), the app gets
    BodyTooLarge from `receive` and whatever it answers after that is dropped. Nothing past the limit is read,
    so the server closes the connection instead of reading on.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        if not any(name in (b"content-length", b"transfer-encoding") for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)  # no body: nothing to count
            return
        seen = 0
        started = tripped = False

        async def counted_receive() -> Message:
            nonlocal seen, started, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if not started and not tripped:
                        tripped = True
                        await _too_large(self.limit)(scope, receive, send)
                    tripped = True
                    raise BodyTooLarge(self.limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped:
                return  # the 413 went out; what the app answers to BodyTooLarge is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not tripped:
                raise


_templates: dict[re.Pattern[str], str] = {}


def _template(pattern: re.Pattern[str]) -> str:
    """Return a fast route's path template (/entities/{entity_id}) from its pattern, once per route."""
    got = _templates.get(pattern)
    if got is None:
        got = _templates[pattern] = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.pattern).replace("\\", "").replace("/?", "")
    return got


@dataclass(frozen=True)
class FastRoute:
    """A hot route answered by `FastRoutes`: method, full-match path pattern with named groups, handler.

    `handler(request, **groups)` is the same coroutine the router has registered for the route; `on_error`
    turns the exceptions the router's exception handlers would have answered into a response (and re-raises
    anything else, which then reaches the server-error layer as usual).
    """

    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Awaitable[Response]]
    on_error: Callable[[Request, Exception], Response]


class FastRoutes:
    """The innermost layer: answers registered hot routes without the router's linear scan.

    With ~300 routes, Starlette/FastAPI route matching, dependency solving and the exception/exit-stack layers
    cost more than an NGSI-LD entity read itself. Everything outside this layer (admission control,
    authentication and authorisation, the body limit) still runs for every request; the handlers are the ones
    the router would call, so answers are identical.
    """

    def __init__(self, app: ASGIApp, routes: list[FastRoute]) -> None:
        self.app = app
        self.routes = routes  # filled by the extensions when they mount

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            path = scope["path"]
            for route in self.routes:
                if route.method != method:
                    continue
                m = route.pattern.fullmatch(path)
                if m is None:
                    continue
                params: dict[str, Any] = m.groupdict()
                scope["path_params"] = params
                scope["cb.route"] = _template(route.pattern)  # the metrics label: the template, not the path
                request = Request(scope, receive)
                try:
                    response = await route.handler(request, **params)
                except Exception as exc:  # noqa: BLE001 - on_error answers or re-raises
                    response = route.on_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    rt: CityBrain,
    manage_runtime: bool = True,
    startup: list[Callable[[], Awaitable[None]]] | None = None,
) -> FastAPI:
    """Return the HTTP app; with manage_runtime the app starts and stops the runtime, then runs `startup`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime and not rt.started:
            await rt.start()
        for hook in startup or []:
            await hook()
        try:
            yield
        finally:
            if manage_runtime and rt.started:
                await rt.stop()

    # FastAPI's native OpenTelemetry layer is off: citybrain exports its own /metrics and JSON logs, and the
    # layer's per-request provider lookups cost ~4 % of a request.
    app = FastAPI(title="citybrain", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="The city brain's HTTP API. Errors are RFC 7807 problem details.")
    app.state.rt = rt
    app.state.fast_routes = []
    problems.install(app)
    limit = rt.settings.max_body_bytes

    app.add_middleware(FastRoutes, routes=app.state.fast_routes)
    app.add_middleware(BodyLimit, limit=limit)

    app.include_router(introspection.router)
    app.include_router(routes.router)
    for name in EXTENSIONS:
        resolve(name, "mount")(app, rt)
    return app
