"""Test helpers: a small city with two communities and one identity (with an API key) per role, served with auth on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from citybrain.clock import FakeClock
from citybrain.runtime import CityBrain
from citybrain.testing import Sensor, TestCity, build, running

TRAFFIC = Sensor("TrafficFlowObserved", "urn:ngsi-ld:TrafficFlowObserved:t{n}", at=(0.4, 0.4), placed=False,
                 attrs={"intensity": {"type": "Property", "value": 420},
                        "averageVehicleSpeed": {"type": "Property", "value": 31.5}})
# city bj > district d1 > subdistrict s1 > communities c1 (west, grid g1) and c2 (east, grid g2), one traffic
# sensor (t1, t2) in each cell, located by its point
TOWN = TestCity(cols=2, rows=1, k=1, districts=1, city="urn:ngsi-ld:City:bj", cell_id="urn:ngsi-ld:Grid:g{n}",
                community_id="urn:ngsi-ld:Community:c{n}", origin=(116.0, 39.0), size=(0.5, 0.5), names=True,
                sensors=(TRAFFIC,))
SQUARE = {"type": "Polygon", "coordinates": [[[116.0, 39.0], [117.0, 39.0], [117.0, 40.0], [116.0, 40.0], [116.0, 39.0]]]}
WEST, EAST = TOWN.box(0), TOWN.box(1)
C1, C2 = TOWN.community(0), TOWN.community(1)
G1, G2 = TOWN.cell(0), TOWN.cell(1)
T1, T2 = TOWN.sensor(0), TOWN.sensor(1)

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
    """Write the trust tests' city."""
    await build(rt, TOWN)


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
    async with running(TOWN, directory=tmp_path, start="2026-03-01T08:00:00Z", auth="on",
                       node_id="city") as (rt, client, clock):
        keys: dict[str, str] = {}
        ctx = rt.context("admin:test")
        for role, (dept, area) in SCOPES.items():
            name = "boss" if role == "admin" else role.replace("_", "-")
            await rt.execute("user.add", {"name": name, "role": role, "department": dept, "place": area,
                                          "password": f"pw-{name}" if role == "data_officer" else None}, ctx)
            keys[role] = (await rt.execute("user.key", {"name": name}, ctx))["key"]
        yield City(rt, client, clock, keys)
