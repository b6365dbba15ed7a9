"""HTTP API of the indicators: /api/v1/indicators (all, for a period and area) and /api/v1/indicators/{id}."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import json, rt_of
from citybrain.clock import iso
from citybrain.errors import NotFound
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1/indicators", tags=["indicators"])


def _period(request: Request, start: str | None, end: str | None) -> tuple[str, str]:
    """Default period: the 7 days up to now (the runtime's clock)."""
    now = rt_of(request).clock.now()
    return start or iso(now - timedelta(days=7)), end or iso(now)


@router.get("")
async def all_indicators(request: Request, start: str | None = Query(None, alias="from"),
                         end: str | None = Query(None, alias="to"), area: str | None = None,
                         trend: int = Query(1, ge=0, le=12), compare: bool = True) -> Response:
    """Return every indicator with value, score, target and clause, the total and dimension scores."""
    from citybrain.indicators import board_of

    a, b = _period(request, start, end)
    return json(await board_of(rt_of(request)).evaluate(a, b, area, trend=trend, compare=compare))


@router.get("/{indicator_id}")
async def one_indicator(request: Request, indicator_id: str, start: str | None = Query(None, alias="from"),
                        end: str | None = Query(None, alias="to"), area: str | None = None,
                        trend: int = Query(3, ge=0, le=12)) -> Response:
    """Return one indicator for a period and area, with its trend and its value in each sub-area."""
    from citybrain.indicators import board_of

    board = board_of(rt_of(request))
    if indicator_id not in board.iset.by_id:
        raise NotFound(f"unknown indicator {indicator_id}", field="id")
    a, b = _period(request, start, end)
    got = await board.evaluate(a, b, area, trend=trend, only=indicator_id)
    row = got["indicators"][0]
    row["areas"] = [{"area": x["area"], "name": x["name"], "value": x["values"].get(indicator_id)}
                    for x in got["areas"]]
    return json({**row, "from": got["from"], "to": got["to"], "area": got["area"], "periods": got["periods"]})


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the indicator endpoints to the app."""
    app.include_router(router)
