"""HTTP API of the live city: /api/v1/situation, /api/v1/risk and /api/v1/rules."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import json, rt_of
from citybrain.errors import NotFound
from citybrain.rules.spec import RANK
from citybrain.runtime import CityBrain

router = APIRouter(prefix="/api/v1", tags=["situation"])


def _known(request: Request, place: str) -> None:
    if place not in rt_of(request).services["places"]:
        raise NotFound(f"unknown place {place}", field="place")


@router.get("/situation")
async def situation_overview(request: Request, level: str = Query("district", description="grid … city")) -> Response:
    """Return the brief situation of every place of one level."""
    rt = rt_of(request)
    sit = rt.services["situation"]
    ids = sorted(pid for pid, s in sit.states.items() if s.level == level)
    return json({"level": level, "observations": sit.observations, "places": [sit.summary(p, brief=True) for p in ids]})


@router.get("/situation/{place}")
async def situation_of(request: Request, place: str) -> Response:
    """Return the situation of a place: latest values, rolling statistics, freshness and coverage."""
    _known(request, place)
    return json(rt_of(request).services["situation"].summary(place))


@router.get("/risk")
async def risk_list(
    request: Request,
    level: str | None = Query(None, description="grid or community (default both)"),
    min: str = Query("blue", description="lowest risk level listed: blue, yellow, orange, red"),
) -> Response:
    """List the places at risk, worst first, each with its explanation."""
    if min not in RANK:
        raise NotFound(f"unknown level {min}", field="min")
    return json(rt_of(request).services["risk"].listing(level, min))


@router.get("/risk/{place}")
async def risk_of(request: Request, place: str) -> Response:
    """Return the risk of a cell or community (factors and their contributions); other places list their worst."""
    _known(request, place)
    rt = rt_of(request)
    model = rt.services["risk"]
    got = model.risk.get(place)
    p = rt.services["places"].get(place)
    if p is not None and p.type in ("Grid", "Community"):
        return json(got or {"place": place, "type": p.type, "level": "none", "score": 0.0, "factors": [],
                            "explanation": "no active hazard"})
    inside = [model.risk[c] for c in rt.services["places"].descendants(place) if c in model.risk]
    inside = [r for r in inside if r["level"] != "none"]
    inside.sort(key=lambda r: -r["score"])
    top = inside[0]["level"] if inside else "none"
    return json({"place": place, "type": p.type if p else None, "level": top, "at_risk": inside[:100]})


@router.get("/rules")
async def rules(request: Request) -> Response:
    """Return the rules in force and the detector's counters."""
    judge = rt_of(request).services["rules"]
    return json({"file": judge.path or "default.yaml", "rules": judge.describe(), "detectors": judge.detectors.stats()})


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the situation, risk and rules routes."""
    app.include_router(router)
