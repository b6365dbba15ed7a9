"""HTTP API of dispatch: /api/v1/resources (list) and /api/v1/dispatch (incidents, run)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response

from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.runtime import CityBrain

router = APIRouter(tags=["dispatch"])


@router.get("/api/v1/resources")
async def resources(request: Request) -> Response:
    """List resources with their capability, capacity, location and free units."""
    return json([r.public() for r in await rt_of(request).ports.dispatch.resources()])


@router.get("/api/v1/dispatch/incidents")
async def incidents(request: Request, state: str | None = None) -> Response:
    """List incidents (optionally of one state: open, assigned, closed)."""
    return json(await rt_of(request).ports.dispatch.incidents(state))


@router.post("/api/v1/dispatch/incidents")
async def open_incident(request: Request) -> Response:
    """Open an incident: {title, place | lon/lat, needs: [{capability, units}]}."""
    rt = rt_of(request)
    return json(await rt.execute("incident.open", await read_json(request), context_of(request)), 201)


@router.post("/api/v1/dispatch/run")
async def run(request: Request) -> Response:
    """Assign available resources to open incidents at least total travel time."""
    rt = rt_of(request)
    body = await read_json(request) if await request.body() else {}
    return json(await rt.execute("dispatch.run", body, context_of(request)))


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the dispatch routes."""
    app.include_router(router)
