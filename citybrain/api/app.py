"""Build the FastAPI application around a runtime."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from citybrain import __version__
from citybrain.api import introspection, problems, routes
from citybrain.api.problems import problem
from citybrain.runtime import CityBrain

# Modules with `def mount(app: FastAPI, rt: CityBrain) -> None`, mounted in this order when importable.
EXTENSIONS: list[str] = [
    "citybrain.trust.api", "citybrain.ledger.api",
    "citybrain.situation.api", "citybrain.alerts.api",
    "citybrain.cases.api", "citybrain.open311",
    "citybrain.dashboard",
    "citybrain.ngsi",
    "citybrain.federation.api",
    "citybrain.modes.api", "citybrain.plans.api", "citybrain.dispatch.api",
    "citybrain.indicators.api",
    "citybrain.ops",
]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 (pure ASGI: no per-request task or copy)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    await problem(413, "PayloadTooLarge", f"request body over {self.limit} bytes")(scope, receive, send)
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

    app = FastAPI(title="citybrain", version=__version__, lifespan=lifespan,
                  description="The city brain's HTTP API. Errors are RFC 7807 problem details.")
    app.state.rt = rt
    problems.install(app)
    limit = rt.settings.max_body_bytes

    app.add_middleware(BodyLimit, limit=limit)

    app.include_router(introspection.router)
    app.include_router(routes.router)
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        module.mount(app, rt)
    return app
