"""Dispatch: open incidents that need resources, and send the resources that reach them soonest in total.

Commands: `incident.open` {title, place | lon/lat, needs: [{capability, units}]}, `dispatch.run` (assign
available resources to open incidents, least total travel time on the road graph, subject to capability
and capacity), `dispatch.release` (incident done: its resources become available again). Events: the
command events; `dispatch.run` carries every assignment with its travel time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.dispatch.resources import Resource, resource_of
from citybrain.dispatch.roads import RoadGraph, graph_of_places
from citybrain.dispatch.solver import solve
from citybrain.errors import Conflict, NotFound, ValidationError
from citybrain.model.commands import place_at
from citybrain.ports import Ports
from citybrain.store import EntityQuery, PutDoc, SetAttrs

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

INCIDENTS = "incidents"


class Need(msgspec.Struct, kw_only=True):
    """So many units of a capability (vehicles or teams; people or items for shelters and supplies)."""

    capability: str
    units: int = 1


class IncidentOpen(msgspec.Struct, kw_only=True):
    """incident.open: something at a place that needs resources."""

    title: str
    needs: list[Need]
    place: str | None = None
    lon: float | None = None
    lat: float | None = None
    source: str = ""  # plan task, alert or case it came from
    plan: str | None = None


class DispatchRun(msgspec.Struct, kw_only=True):
    """dispatch.run: assign resources to open incidents (all, or the listed ones)."""

    incidents: list[str] | None = None
    method: str = "auto"


class Release(msgspec.Struct, kw_only=True):
    """dispatch.release: an incident is handled; its resources are free again."""

    incident: str
    note: str = ""


class Dispatcher:
    """Resources, incidents and the road graph of this node."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self._graph: RoadGraph | None = None
        self._graph_cells = -1

    async def graph(self) -> RoadGraph:
        """Return the road graph of the city (rebuilt when the places changed)."""
        places = self.rt.ports.places
        cells = len(places.of_type("Grid"))
        if self._graph is None or cells != self._graph_cells:
            roads = await self.rt.store.query_entities(EntityQuery(types=["Road"], limit=100_000))
            points = [tuple(c) for r in roads if r.location for c in r.location.get("coordinates", [])[:1]]
            self._graph = graph_of_places(places, points)  # type: ignore[arg-type]
            self._graph_cells = cells
        return self._graph

    async def resources(self) -> list[Resource]:
        """Return every Resource entity with a point location."""
        ents = await self.rt.store.query_entities(EntityQuery(types=["Resource"], limit=1_000_000))
        return [r for e in ents if (r := resource_of(e)) is not None]

    async def incidents(self, state: str | None = None) -> list[dict[str, Any]]:
        """Return incident documents (optionally of one state)."""
        where = {"state": state} if state else None
        return [d.data for d in await self.rt.store.list_docs(INCIDENTS, where, limit=1_000_000)]

    def point_of(self, place: str) -> tuple[float, float]:
        """Return a representative point of a place."""
        from shapely.geometry import shape

        p = self.rt.ports.places.get(place)
        if p is None or not p.location:
            raise NotFound(f"place: unknown place {place} (or it has no geometry)", field="place")
        pt = shape(p.location).representative_point()
        return float(pt.x), float(pt.y)


async def _open(rt: CityBrain, cmd: IncidentOpen, ctx: Context) -> Outcome:
    desk = rt.ports.own(Ports.dispatch, Dispatcher)
    if not cmd.needs:
        raise ValidationError("needs: list at least one {capability, units}", field="needs")
    for i, n in enumerate(cmd.needs):
        if n.units < 1:
            raise ValidationError(f"needs[{i}].units: must be at least 1", field=f"needs[{i}].units")
    if cmd.lon is not None and cmd.lat is not None:
        lon, lat = cmd.lon, cmd.lat
        place = cmd.place or rt.ports.places.locate(lon, lat)
    elif cmd.place:
        lon, lat = desk.point_of(cmd.place)
        place = cmd.place
    else:
        raise ValidationError("place: give a place or lon/lat", field="place")
    doc: dict[str, Any] = {"id": new_id(), "title": cmd.title, "place": place, "lon": lon, "lat": lat, "state": "open",
           "needs": [{"capability": n.capability, "units": n.units} for n in cmd.needs], "source": cmd.source,
           "plan": cmd.plan, "assignments": [], "opened_at": rt.now(), "actor": ctx.actor}
    return Outcome(ops=[PutDoc(INCIDENTS, doc["id"], doc, expect_version=0)], result=doc)


async def _run(rt: CityBrain, cmd: DispatchRun, ctx: Context) -> Outcome:
    desk = rt.ports.own(Ports.dispatch, Dispatcher)
    wanted = set(cmd.incidents) if cmd.incidents is not None else None
    incidents = [d for d in await desk.incidents("open") if wanted is None or d["id"] in wanted]
    resources = [r for r in await desk.resources() if r.units > 0]
    # one row per (incident, need): a need is served by resources having its capability
    rows = [(d, n) for d in incidents for n in d["needs"]]
    now = rt.now()
    if not rows:
        return Outcome(result={"assignments": [], "total_minutes": 0.0, "unmet": 0}, record=False)
    graph = await desk.graph()
    minutes = graph.times([(r.lon, r.lat) for r in resources], [(d["lon"], d["lat"]) for d, _ in rows]).T
    able = np.array([[n["capability"] in r.capability for r in resources] for _, n in rows], dtype=bool)
    cost = np.where(able, minutes, np.inf) if resources else np.zeros((len(rows), 0))
    sol = solve(cost, np.array([n["units"] for _, n in rows]), np.array([r.units for r in resources]), cmd.method)
    ops: list[Any] = []
    assignments: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for i, ri, units, mins in sol.flows:
        d, n = rows[i]
        res = resources[ri]
        a = {"incident": d["id"], "resource": res.id, "name": res.name, "capability": n["capability"],
             "units": units, "minutes": round(mins, 2), "time": now}
        d["assignments"].append(a)
        assignments.append(a)
        used[res.id] = used.get(res.id, 0) + units
    for d in incidents:
        d["state"] = "assigned" if d["assignments"] else "open"
        d["unmet"] = [{"capability": n["capability"], "units": sol.unmet[i]} for i, (dd, n) in enumerate(rows)
                      if dd is d and sol.unmet[i] > 0]
        if d["assignments"]:
            ops.append(PutDoc(INCIDENTS, d["id"], d))
    for res in resources:
        if res.id in used:
            committed = res.committed + used[res.id]
            full = res.type not in ("shelter", "supply") or committed >= res.capacity
            ops.append(SetAttrs(res.id, {"committed": {"type": "Property", "value": committed},
                                         "status": {"type": "Property", "value": "assigned" if full else "available"}},
                                now))
    result = {"assignments": assignments, "total_minutes": round(sol.total, 2), "unmet": int(sum(sol.unmet)),
              "method": sol.method, "solver_seconds": round(sol.seconds, 4), "incidents": len(incidents),
              "resources": len(resources)}
    return Outcome(ops=ops, result=result, event=result)


async def _release(rt: CityBrain, cmd: Release, ctx: Context) -> Outcome:
    doc = await rt.store.get_doc(INCIDENTS, cmd.incident)
    if doc is None:
        raise NotFound(f"incident: unknown incident {cmd.incident}", field="incident")
    inc = doc.data
    if inc["state"] == "closed":
        raise Conflict(f"incident {cmd.incident} is already closed", field="incident")
    now = rt.now()
    ops: list[Any] = []
    back: dict[str, int] = {}
    for a in inc["assignments"]:
        back[a["resource"]] = back.get(a["resource"], 0) + a["units"]
    for rid, units in back.items():
        ent = await rt.store.get_entity(rid)
        if ent is None:
            continue
        committed = max(int(ent.value("committed", 0) or 0) - units, 0)
        ops.append(SetAttrs(rid, {"committed": {"type": "Property", "value": committed},
                                  "status": {"type": "Property", "value": "available"}}, now))
    inc.update(state="closed", closed_at=now, note=cmd.note)
    ops.append(PutDoc(INCIDENTS, inc["id"], inc, expect_version=doc.version))
    return Outcome(ops=ops, result={"incident": inc["id"], "released": back})


async def _incident_places(rt: CityBrain, ids: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for incident_id in ids:
        doc = await rt.store.get_doc(INCIDENTS, incident_id)
        if doc is not None:
            out.append(place_at(rt, doc.data.get("place"), doc.data.get("lon"), doc.data.get("lat")))
    return out


async def _locate_open(rt: CityBrain, cmd: IncidentOpen) -> list[str | None]:
    """An incident opens where it is: its place, else the cell of its point."""
    return [place_at(rt, cmd.place, cmd.lon, cmd.lat)]


async def _locate_run(rt: CityBrain, cmd: DispatchRun) -> list[str | None]:
    """A dispatch run touches the incidents it names (all open ones: the whole city)."""
    return await _incident_places(rt, cmd.incidents) if cmd.incidents is not None else [None]


async def _locate_release(rt: CityBrain, cmd: Release) -> list[str | None]:
    return await _incident_places(rt, [cmd.incident])


async def setup(rt: CityBrain) -> None:
    """Register the dispatch commands."""
    rt.ports.dispatch = Dispatcher(rt)
    rt.commands.register("incident.open", IncidentOpen, _open, "open an incident that needs resources",
                         place=_locate_open)
    rt.commands.register("dispatch.run", DispatchRun, _run, "assign resources to open incidents (least travel time)",
                         place=_locate_run)
    rt.commands.register("dispatch.release", Release, _release, "close an incident and free its resources",
                         place=_locate_release)
