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

from citybrain.dashboard.stream import mount_stream
from citybrain.errors import NotFound
from citybrain.model.types import OBSERVATION_TYPES, PLACE_LEVELS
from citybrain.runtime import CityBrain
from citybrain.store import EntityQuery
from citybrain.trust.middleware import confine

STATIC = Path(__file__).parent / "static"


class IngestRate:
    """Observations per minute over a sliding window, sampled from the ingest counters."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.samples: deque[tuple[float, int]] = deque(maxlen=120)

    def per_minute(self) -> float:
        """Return the ingest rate over the last minute (observations/min)."""
        now = time.monotonic()
        total = sum(self.rt.services["ingest"].stored_by_type.values())
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[0][0] > 60:
            self.samples.popleft()
        t0, c0 = self.samples[0]
        if now - t0 < 1:
            return 0.0
        return (total - c0) * 60.0 / (now - t0)


async def open_alerts(rt: CityBrain, within: str | None) -> dict[str, Any]:
    """Count open alerts (in an area) from the alert documents."""
    outbox = getattr(rt.services["alerts"], "outbox", None)
    if outbox is not None:
        await outbox.flush()
    places = rt.services["places"]
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


def _page(name: str, **data: str) -> HTMLResponse:
    html = (STATIC / name).read_text(encoding="utf-8")
    attrs = " ".join(f'data-{k}="{v}"' for k, v in data.items())
    return HTMLResponse(html.replace("<body", f"<body {attrs}", 1), headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI, rt: CityBrain) -> None:
    """Add the dashboard pages, its static assets and its read endpoints to the app."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
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
        if place_id not in rt.services["places"]:
            raise NotFound(f"unknown place {place_id}", field="place_id")
        return _page("index.html", scope=place_id)

    @app.get("/case/{case_id}", include_in_schema=False)
    async def case_page(case_id: str) -> HTMLResponse:
        return _page("case.html", case=case_id)

    @app.get("/api/v1/map/places", tags=["dashboard"])
    async def map_places(request: Request, level: str = Query("Grid"), within: str | None = None) -> Response:
        """Return places of one level (inside `within`) as a GeoJSON FeatureCollection."""
        within = confine(request, within)
        index = rt.services["places"]
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
        index = rt.services["places"]
        key = f"sensors|{within}|{limit}"
        stamp = len(rt.services["directory"].types) * 1_000_003 + int(time.monotonic() // 30)  # 30 s at most
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
                                "observations_total": sum(rt.services["ingest"].stored_by_type.values()),
                                "node": rt.node_id, "role": rt.settings.role, "time": rt.now()}
        for name in ("alerts", "cases", "modes", "ledger", "federation", "indicators"):
            service = rt.services.get(name)
            kpis = getattr(service, "kpis", None)
            if kpis is not None:
                body[name] = await kpis(within)
        if "alerts" in rt.services and "alerts" not in body:
            body["alerts"] = await open_alerts(rt, within)
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/-/dashboard-check", include_in_schema=False)
    async def check(request: Request) -> dict[str, Any]:
        return {"static": sorted(p.name for p in STATIC.iterdir())}
