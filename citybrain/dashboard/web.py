"""Serve the dashboard pages and the map/KPI endpoints they read."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from citybrain.confine import confine
from citybrain.dashboard.apidocs import mount as mount_apidocs
from citybrain.dashboard.stream import mount_stream
from citybrain.errors import NotFound
from citybrain.model.types import OBSERVATION_TYPES, PLACE_LEVELS
from citybrain.ports import Port, Ports
from citybrain.runtime import CityBrain
from citybrain.store import EntityQuery

STATIC = Path(__file__).parent / "static"


class IngestRate:
    """Observations per minute over a sliding window, sampled from the ingest counters."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        # the ingest counters count from the node's start, which is (near enough) when this is created:
        # that is the first sample, so the first reading is the rate since the start rather than 0
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)], maxlen=120)

    def per_minute(self) -> float:
        """Return the ingest rate over the last minute (observations/min)."""
        now = time.monotonic()
        total = sum(self.rt.ports.ingest.stored_by_type.values())
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[0][0] > 60:
            self.samples.popleft()
        t0, c0 = self.samples[0]
        if now - t0 < 60:
            return float(total - c0)  # under a minute of samples: what arrived, not an extrapolated rate
        return (total - c0) * 60.0 / (now - t0)


async def open_alerts(rt: CityBrain, within: str | None) -> dict[str, Any]:
    """Count open alerts (in an area) from the alert documents."""
    outbox = getattr(rt.ports.alerts, "outbox", None)
    if outbox is not None:
        await outbox.flush()
    places = rt.ports.places
    docs = [d.data for d in await rt.store.list_docs("alerts", limit=100_000)]
    open_docs = [d for d in docs if d.get("status") != "resolved"]
    if within:
        open_docs = [d for d in open_docs if any(
            isinstance(p, str) and p in places and places.within(p, within) for p in (d.get("place"), d.get("community")))]
    by_level: dict[str, int] = {}
    for d in open_docs:
        level = str(d.get("warningLevel", "blue"))
        by_level[level] = by_level.get(level, 0) + 1
    return {"open": len(open_docs), "by_level": by_level}


# lifecycle columns of the case board (GB/T 30428 order), then the states a case leaves the flow by
BOARD_STATES = ("intake", "filed", "dispatched", "handling", "feedback", "verified", "closed", "evaluated",
                "suspended", "cancelled", "merged")
FINAL_STATES = frozenset({"closed", "evaluated", "cancelled", "merged"})
CASE_CARD = ("id", "kind", "state", "category", "title", "place", "community", "channel", "departments", "overdue",
             "deadline", "created_at", "updated_at", "severity")


async def case_board(rt: CityBrain, within: str | None, per_state: int) -> dict[str, Any]:
    """Return the case board: every lifecycle state with its count, overdue count and newest cases.

    Overdue cases come first in each column, so none is hidden below the cut."""
    found = await rt.ports.cases.find(place=within)
    columns: dict[str, list[dict[str, Any]]] = {s: [] for s in BOARD_STATES}
    for c in found:
        columns.setdefault(str(c.get("state")), []).append(c)
    states = []
    for state, cases in columns.items():
        newest = sorted(cases, key=lambda c: c.get("created_at") or "", reverse=True)
        overdue = [c for c in newest if c.get("overdue")]
        shown = overdue + [c for c in newest if not c.get("overdue")]
        states.append({"state": state, "count": len(cases), "overdue": len(overdue),
                       "cases": [{k: c.get(k) for k in CASE_CARD} for c in shown[:per_state]]})
    return {"total": len(found), "open": sum(1 for c in found if c.get("state") not in FINAL_STATES),
            "overdue": sum(1 for c in found if c.get("overdue")), "states": states}


def point_of(places: Any, place: str | None) -> tuple[float, float] | None:
    """Return a representative point (lon, lat) of a place, or None."""
    if not place or place not in places:
        return None
    geom = places.get(place).location
    if not geom:
        return None
    try:
        from shapely.geometry import shape

        pt = shape(geom).representative_point()
    except Exception:
        return None
    return (round(pt.x, 6), round(pt.y, 6))


async def case_points(rt: CityBrain, within: str | None) -> dict[str, Any]:
    """Return open cases as GeoJSON points (their reported location, else a point of their place)."""
    places = rt.ports.places
    features = []
    for c in await rt.ports.cases.find(place=within):
        if c.get("state") in FINAL_STATES:
            continue
        loc = c.get("location") or {}
        lonlat = (loc["lon"], loc["lat"]) if loc.get("lon") is not None and loc.get("lat") is not None \
            else point_of(places, c.get("place"))
        if lonlat is None:
            continue
        features.append({"type": "Feature", "id": c["id"], "geometry": {"type": "Point", "coordinates": list(lonlat)},
                         "properties": {k: c.get(k) for k in CASE_CARD}})
    return {"type": "FeatureCollection", "features": features}


async def resource_points(rt: CityBrain, within: str | None) -> dict[str, Any]:
    """Return dispatch resources as GeoJSON points with the grid cell they stand in (only inside `within`)."""
    dispatch = rt.ports.find(Ports.dispatch)
    if dispatch is None:
        return {"type": "FeatureCollection", "features": []}
    places = rt.ports.places
    features = []
    for r in await dispatch.resources():
        cell = places.locate(r.lon, r.lat)
        if within and (cell is None or not places.within(cell, within)):
            continue
        features.append({"type": "Feature", "id": r.id, "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                         "properties": r.public() | {"place": cell}})
    return {"type": "FeatureCollection", "features": features}


async def trend(rt: CityBrain, place: str, attr: str, last: int, max_sensors: int = 60) -> dict[str, Any]:
    """Return an hourly series of `attr` across the sensors in a place: mean, max and sensor count per hour."""
    places = rt.ports.places
    if place not in places:
        raise NotFound(f"unknown place {place}", field="place")
    inside = [place, *places.descendants(place)]
    sensors = await rt.store.query_entities(EntityQuery(types=list(OBSERVATION_TYPES), places=inside,
                                                        limit=max_sensors, with_attrs=False))
    buckets: dict[str, list[float]] = {}
    unit = None
    used = 0
    for e in sensors:
        rows = await rt.store.history(e.id, attr, last_n=last)
        if rows:
            used += 1
        for r in rows:
            if not isinstance(r.value, (int, float)) or isinstance(r.value, bool):
                continue
            unit = unit or r.unit
            buckets.setdefault(r.observed_at[:13] + ":00:00Z", []).append(float(r.value))
    series = [{"time": t, "mean": round(sum(v) / len(v), 3), "max": max(v), "min": min(v), "n": len(v)}
              for t, v in sorted(buckets.items())][-last:]
    return {"place": place, "attr": attr, "unit": unit, "sensors": used, "series": series}


def _page(name: str, **data: str) -> HTMLResponse:
    html = (STATIC / name).read_text(encoding="utf-8")
    attrs = " ".join(f'data-{k}="{v}"' for k, v in data.items())
    return HTMLResponse(html.replace("<body", f"<body {attrs}", 1), headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the dashboard pages, its static assets and its read endpoints to the app."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    mount_apidocs(app)
    mount_stream(app, rt)
    rate = IngestRate(rt)
    cache: dict[str, tuple[int, bytes]] = {}

    @app.get("/", include_in_schema=False)
    async def city_view() -> HTMLResponse:
        return _page("index.html", scope="")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse((STATIC / "login.html").read_text(encoding="utf-8"))

    @app.get("/community/{place_id}", include_in_schema=False)
    async def community_view(place_id: str) -> HTMLResponse:
        if place_id not in rt.ports.places:
            raise NotFound(f"unknown place {place_id}", field="place_id")
        return _page("index.html", scope=place_id)

    @app.get("/case/{case_id}", include_in_schema=False)
    async def case_page(case_id: str) -> HTMLResponse:
        return _page("case.html", case=case_id)

    @app.get("/api/v1/map/places", tags=["dashboard"])
    async def map_places(request: Request, level: str = Query("Grid"), within: str | None = None) -> Response:
        """Return places of one level (inside `within`) as a GeoJSON FeatureCollection."""
        within = confine(request, within)
        index = rt.ports.places
        if level not in PLACE_LEVELS:
            raise NotFound(f"unknown level {level}", field="level")
        key = f"{level}|{within}"
        stamp = len(index.places)
        hit = cache.get(key)
        if hit and hit[0] == stamp:
            return Response(hit[1], media_type="application/geo+json")
        allowed = None if not within else {within, *index.descendants(within)}
        features = []
        for p in index.of_type(level):
            if p.location is None or (allowed is not None and p.id not in allowed):
                continue
            features.append({"type": "Feature", "id": p.id, "geometry": p.location, "properties": {
                "id": p.id, "level": p.type, "name": p.value("name"), "nameZh": p.value("nameZh"),
                "parent": p.place, "population": p.value("population")}})
        body = orjson.dumps({"type": "FeatureCollection", "features": features})
        cache[key] = (stamp, body)
        return Response(body, media_type="application/geo+json")

    @app.get("/api/v1/map/sensors", tags=["dashboard"])
    async def map_sensors(request: Request, within: str | None = None,
                          limit: int = Query(20000, le=50000)) -> Response:
        """Return observation points as GeoJSON (values: GET /api/v1/entities/{id}, fetched on demand)."""
        within = confine(request, within)
        index = rt.ports.places
        key = f"sensors|{within}|{limit}"
        stamp = len(rt.ports.directory.types) * 1_000_003 + int(time.monotonic() // 30)  # 30 s at most
        hit = cache.get(key)
        if hit and hit[0] == stamp:
            return Response(hit[1], media_type="application/geo+json")
        places = None if not within else [within, *index.descendants(within)]
        found = await rt.store.query_entities(EntityQuery(types=list(OBSERVATION_TYPES), places=places, limit=limit,
                                                          with_attrs=False))
        features = [{"type": "Feature", "id": e.id, "geometry": e.location,
                     "properties": {"id": e.id, "type": e.type, "place": e.place}}
                    for e in found if e.location and e.location.get("type") == "Point"]
        body = orjson.dumps({"type": "FeatureCollection", "features": features})
        cache[key] = (stamp, body)
        return Response(body, media_type="application/geo+json")

    @app.get("/api/v1/dashboard/summary", tags=["dashboard"])
    async def summary(request: Request, within: str | None = None) -> Response:
        """Return the KPI tiles: ingest rate, open alerts and cases, on-time rate, response time, modes."""
        within = confine(request, within)
        body: dict[str, Any] = {"observations_per_min": round(rate.per_minute(), 1),
                                "observations_total": sum(rt.ports.ingest.stored_by_type.values()),
                                "node": rt.node_id, "role": rt.settings.role, "time": rt.now()}
        kpi_ports: tuple[tuple[str, Port[Any]], ...] = (("alerts", Ports.alerts), ("cases", Ports.cases), ("modes", Ports.modes),
                           ("ledger", Ports.ledger), ("federation", Ports.federation),
                           ("indicators", Ports.indicators))
        for name, port in kpi_ports:
            service = rt.ports.find(port)
            kpis = getattr(service, "kpis", None)
            if kpis is not None:
                body[name] = await kpis(within)
        if rt.ports.has(Ports.alerts) and "alerts" not in body:
            body["alerts"] = await open_alerts(rt, within)
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/api/v1/dashboard/cases", tags=["dashboard"])
    async def board(request: Request, within: str | None = None,
                    per_state: int = Query(15, ge=0, le=500)) -> Response:
        """Return the case board: each lifecycle state with its count, overdue count and cases (overdue first)."""
        within = _known_place(confine(request, within))
        if not rt.ports.has(Ports.cases):
            return Response(orjson.dumps({"total": 0, "open": 0, "overdue": 0, "states": []}),
                            media_type="application/json")
        return Response(orjson.dumps(await case_board(rt, within, per_state)), media_type="application/json")

    @app.get("/api/v1/map/cases", tags=["dashboard"])
    async def map_cases(request: Request, within: str | None = None) -> Response:
        """Return open cases as GeoJSON points (reported location, else a point inside their place)."""
        within = _known_place(confine(request, within))
        body = await case_points(rt, within) if rt.ports.has(Ports.cases) else {"type": "FeatureCollection", "features": []}
        return Response(orjson.dumps(body), media_type="application/geo+json")

    @app.get("/api/v1/map/resources", tags=["dashboard"])
    async def map_resources(request: Request, within: str | None = None) -> Response:
        """Return dispatch resources (teams, vehicles, shelters, supplies) as GeoJSON points inside an area."""
        within = _known_place(confine(request, within))
        return Response(orjson.dumps(await resource_points(rt, within)), media_type="application/geo+json")

    @app.get("/api/v1/dashboard/checkpoint", tags=["dashboard"])
    async def checkpoint(request: Request) -> Response:
        """Return the latest ledger checkpoint checked: tree size, root, time, signature and root verified."""
        return Response(orjson.dumps(ledger.checkpoint_status() if (ledger := rt.ports.find(Ports.ledger)) else {"available": False}), media_type="application/json")

    @app.get("/api/v1/dashboard/trend", tags=["dashboard"])
    async def place_trend(request: Request, place: str, attr: str,
                          last: int = Query(240, ge=1, le=5000)) -> Response:
        """Return an hourly series (mean, max, min, count) of one quantity across the sensors in a place."""
        place = _known_place(confine(request, place)) or place
        return Response(orjson.dumps(await trend(rt, place, attr, last)), media_type="application/json")

    @app.get("/api/v1/dashboard/federation", tags=["dashboard"])
    async def federation(request: Request, within: str | None = None) -> Response:
        """Return an area's reports and the directives sent to it, with read / done receipts."""
        within = _known_place(confine(request, within))
        return Response(orjson.dumps(await fed.area_view(within) if (fed := rt.ports.find(Ports.federation)) else {"available": False, "reports": [], "directives": []}), media_type="application/json")

    def _known_place(place: str | None) -> str | None:
        if place is not None and place not in rt.ports.places:
            raise NotFound(f"unknown place {place}", field="within")
        return place

    @app.get("/-/dashboard-check", include_in_schema=False)
    async def check(request: Request) -> dict[str, Any]:
        return {"static": sorted(p.name for p in STATIC.iterdir())}
