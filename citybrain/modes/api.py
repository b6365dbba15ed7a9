"""HTTP API of operating modes: /api/v1/modes (list, one place's effective mode, declare, revert)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response

from citybrain.api.routes import context_of, json, read_json, rt_of
from citybrain.modes import ModeBoard
from citybrain.ports import Ports
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1/modes", tags=["modes"])


@router.get("")
async def list_modes(request: Request) -> Response:
    """List the city's effective mode and every area with a declared mode, most severe first."""
    board = rt_of(request).ports.own(Ports.modes, ModeBoard)
    return json({"city": await board.kpis(), "areas": board.listing()})


@router.get("/{place:path}")
async def mode_of(request: Request, place: str) -> Response:
    """Return a place's effective mode (inherited from the areas it lies in)."""
    rt = rt_of(request)
    return json(rt.ports.modes.mode_of(place))


@router.post("")
async def declare(request: Request) -> Response:
    """Declare an area's mode: {area, mode, level, reason}."""
    rt = rt_of(request)
    body = await read_json(request)
    result = await rt.execute("mode.declare", body, context_of(request))
    return json(result, status=201)


@router.post("/revert")
async def revert(request: Request) -> Response:
    """Undo an area's last mode change: {area, reason}."""
    rt = rt_of(request)
    body = await read_json(request)
    return json(await rt.execute("mode.revert", body, context_of(request)))


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the modes routes."""
    app.include_router(router)
