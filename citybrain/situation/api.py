"""HTTP API of the live city: /api/v1/situation, /api/v1/risk and /api/v1/rules.

Situation and risk are answered alike by every process of the node: the partitions this process owns from
memory, the others from the snapshots their owners publish in the store (at most `situation_throttle` old,
and read again at most once per throttle period)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query, Request, Response

from citybrain.api.routes import json, rt_of
from citybrain.confine import confine
from citybrain.errors import NotFound
from citybrain.ports import Ports
from citybrain.runtime import CityBrain
from citybrain.signals import RANK
from citybrain.situation import Situation

router = APIRouter(prefix="/api/v1", tags=["situation"])


def _known(request: Request, place: str) -> None:
    if place not in rt_of(request).ports.places:
        raise NotFound(f"unknown place {place}", field="place")


@router.get("/situation")
async def situation_overview(request: Request, level: str = Query("district", description="grid … city"),
                             place: str | None = Query(None, description="only places in this area")) -> Response:
    """Return the brief situation of every place of one level (in an area; a place-scoped caller: its own).

    Every process answers alike: its own partitions live, the others from their published snapshots
    (at most `situation_throttle` old)."""
    rt = rt_of(request)
    area = confine(request, place)
    if area is not None:
        _known(request, area)
    places = rt.ports.places
    situation = rt.ports.own(Ports.situation, Situation)
    view = await situation.view()
    now = situation.now()
    ids = [pid for pid in view.ids_at(level) if area is None or (pid in places and places.within(pid, area))]
    return json({"level": level, "observations": view.observations,
                 "places": [view.summary(p, now, brief=True) for p in ids]})


@router.get("/situation/{place}")
async def situation_of(request: Request, place: str) -> Response:
    """Return the situation of a place: latest values, rolling statistics, freshness and coverage."""
    _known(request, place)
    sit = rt_of(request).ports.own(Ports.situation, Situation)
    return json((await sit.view()).summary(place, sit.now()))


@router.get("/risk")
async def risk_list(
    request: Request,
    level: str | None = Query(None, description="grid or community (default both)"),
    min: str = Query("blue", description="lowest risk level listed: blue, yellow, orange, red"),
    place: str | None = Query(None, description="only places in this area"),
) -> Response:
    """List the places at risk, worst first, each with its explanation (a place-scoped caller: its area)."""
    if min not in RANK:
        raise NotFound(f"unknown level {min}", field="min")
    rt = rt_of(request)
    model = rt.ports.risk
    rows = model.listing(level, min, await model.everywhere())
    area = confine(request, place)
    if area is not None:
        _known(request, area)
        places = rt.ports.places
        rows = [r for r in rows if r["place"] in places and places.within(r["place"], area)]
    return json(rows)


@router.get("/risk/{place}")
async def risk_of(request: Request, place: str) -> Response:
    """Return the risk of a cell or community (factors and their contributions); other places list their worst."""
    _known(request, place)
    rt = rt_of(request)
    risk = await rt.ports.risk.everywhere()
    got = risk.get(place)
    p = rt.ports.places.get(place)
    if p is not None and p.type in ("Grid", "Community"):
        return json(got or {"place": place, "type": p.type, "level": "none", "score": 0.0, "factors": [],
                            "explanation": "no active hazard"})
    inside = [risk[c] for c in rt.ports.places.descendants(place) if c in risk]
    inside = [r for r in inside if r["level"] != "none"]
    inside.sort(key=lambda r: -r["score"])
    top = inside[0]["level"] if inside else "none"
    return json({"place": place, "type": p.type if p else None, "level": top, "at_risk": inside[:100]})


@router.get("/rules")
async def rules(request: Request) -> Response:
    """Return the rules in force and the detector's counters."""
    rt = rt_of(request)
    judge = rt.ports.rules
    return json({"file": judge.path or "default.yaml", "rules": judge.describe(), "detectors": judge.detectors.stats(),
                 "pipeline": rt.ports.pipeline.describe()})


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the situation, risk and rules routes."""
    app.include_router(router)
