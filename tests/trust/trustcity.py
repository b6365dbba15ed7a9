"""Test helpers: a small city with two communities and one identity (with an API key) per role, served with auth on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain

SQUARE = {"type": "Polygon", "coordinates": [[[116.0, 39.0], [117.0, 39.0], [117.0, 40.0], [116.0, 40.0], [116.0, 39.0]]]}
WEST = {"type": "Polygon", "coordinates": [[[116.0, 39.0], [116.5, 39.0], [116.5, 39.5], [116.0, 39.5], [116.0, 39.0]]]}
EAST = {"type": "Polygon", "coordinates": [[[116.5, 39.0], [117.0, 39.0], [117.0, 39.5], [116.5, 39.5], [116.5, 39.0]]]}
C1, C2 = "urn:ngsi-ld:Community:c1", "urn:ngsi-ld:Community:c2"
G1, G2 = "urn:ngsi-ld:Grid:g1", "urn:ngsi-ld:Grid:g2"
T1, T2 = "urn:ngsi-ld:TrafficFlowObserved:t1", "urn:ngsi-ld:TrafficFlowObserved:t2"

# role -> (department, place) scope of the test identity named after the role
SCOPES: dict[str, tuple[str | None, str | None]] = {
    "admin": (None, None), "city_operator": (None, None), "command_centre": (None, None),
    "supervisor": (None, None), "department_handler": ("transport", None), "community_operator": (None, C1),
    "grid_worker": (None, C1), "data_officer": (None, None), "auditor": (None, None),
    "external_user": (None, None), "device": (None, None), "ops": (None, None),
}


def place(pid: str, ptype: str, parent: str | None, geo: dict = SQUARE) -> dict:
    return {"entity": {"id": pid, "type": ptype, "place": parent, "location": geo,
                       "attrs": {"name": {"type": "Property", "value": pid.rsplit(":", 1)[-1]}}}}


async def build_city(rt: CityBrain) -> None:
    """City bj > district d1 > subdistrict s1 > communities c1 (west, grid g1) and c2 (east, grid g2)."""
    await rt.execute("entity.write", place("urn:ngsi-ld:City:bj", "City", None))
    await rt.execute("entity.write", place("urn:ngsi-ld:District:d1", "District", "urn:ngsi-ld:City:bj"))
    await rt.execute("entity.write", place("urn:ngsi-ld:Subdistrict:s1", "Subdistrict", "urn:ngsi-ld:District:d1"))
    await rt.execute("entity.write", place(C1, "Community", "urn:ngsi-ld:Subdistrict:s1", WEST))
    await rt.execute("entity.write", place(C2, "Community", "urn:ngsi-ld:Subdistrict:s1", EAST))
    await rt.execute("entity.write", place(G1, "Grid", C1, WEST))
    await rt.execute("entity.write", place(G2, "Grid", C2, EAST))
    for sid, lon in ((T1, 116.2), (T2, 116.7)):
        await rt.execute("entity.write", {"entity": {
            "id": sid, "type": "TrafficFlowObserved", "location": {"type": "Point", "coordinates": [lon, 39.2]},
            "attrs": {"intensity": {"type": "Property", "value": 420},
                      "averageVehicleSpeed": {"type": "Property", "value": 31.5}}}})


@dataclass
class City:
    """The running node, an HTTP client, and each role's API key."""

    rt: CityBrain
    client: httpx.AsyncClient
    clock: FakeClock
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        """Headers authenticating as the identity of `role`."""
        return {"X-API-Key": self.keys[role]}


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[City]:
    clock = FakeClock("2026-03-01T08:00:00Z")
    rt = CityBrain(Settings(store=str(tmp_path / "trust.db"), auth="on", node_id="city"), clock=clock)
    await rt.start()
    await build_city(rt)
    keys: dict[str, str] = {}
    ctx = rt.context("admin:test")
    for role, (dept, area) in SCOPES.items():
        name = "boss" if role == "admin" else role.replace("_", "-")
        await rt.execute("user.add", {"name": name, "role": role, "department": dept, "place": area,
                                      "password": f"pw-{name}" if role == "data_officer" else None}, ctx)
        keys[role] = (await rt.execute("user.key", {"name": name}, ctx))["key"]
    app = create_app(rt, manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield City(rt, client, clock, keys)
    await rt.stop()
