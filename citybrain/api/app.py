"""Build the FastAPI application around a runtime."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from citybrain import __version__
from citybrain.api import introspection, problems, routes
from citybrain.api.problems import problem
from citybrain.runtime import CityBrain

# Modules with `def mount(app: FastAPI, rt: CityBrain) -> None`, mounted in this order when importable.
EXTENSIONS: list[str] = [
    "citybrain.dashboard",
]


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

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return problem(413, "PayloadTooLarge", f"request body over {limit} bytes")
        return await call_next(request)

    app.include_router(introspection.router)
    app.include_router(routes.router)
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        module.mount(app, rt)
    return app
