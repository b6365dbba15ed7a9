"""dispatch.run on the demo city: capability respected, resources committed, released again; CSV import errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.demo import load_demo_city
from citybrain.dispatch.resources import parse_csv
from citybrain.errors import ValidationError
from citybrain.runtime import CityBrain


async def test_dispatch_run_and_release(tmp_path: Path) -> None:
    settings = Settings(store=str(tmp_path / "d.db"))
    async with CityBrain(settings, clock=FakeClock("2016-07-20T04:00:00Z"),
                         components=["citybrain.model.commands", "citybrain.dispatch"]) as rt:
        await load_demo_city(rt, "tiny")
        ctx = rt.context("command_centre:wang")
        inc = await rt.execute("incident.open", {"title": "underpass flooded", "place":
                                                 "urn:ngsi-ld:Community:dongcheng-1-1",
                                                 "needs": [{"capability": "pumping", "units": 2},
                                                           {"capability": "shelter", "units": 120}]}, ctx)
        got = await rt.execute("dispatch.run", {}, rt.context("command_centre:wang"))
        assert got["unmet"] == 0
        by = {a["resource"]: a for a in got["assignments"]}
        assert sum(a["units"] for a in got["assignments"] if a["capability"] == "pumping") == 2
        assert all("pump-truck" in r for r, a in by.items() if a["capability"] == "pumping")
        assert all(a["minutes"] > 0 for a in got["assignments"])
        pump = next(r for r in by if "pump-truck" in r)
        assert (await rt.store.get_entity(pump)).value("status") == "assigned"  # type: ignore[union-attr]
        free = [r for r in await rt.ports.dispatch.resources() if "pumping" in r.capability and r.units]
        assert len(free) == 1
        await rt.execute("dispatch.release", {"incident": inc["id"]}, rt.context("command_centre:wang"))
        assert (await rt.store.get_entity(pump)).value("status") == "available"  # type: ignore[union-attr]


def test_csv_import_errors_name_the_line() -> None:
    good = "id,name,resourceType,capability,capacity,unitCode,lon,lat,owner\n" \
           "pump-9,Pump 9,vehicle,pumping;drainage,3000,MQH,116.4,39.9,water\n"
    rows = parse_csv(good)
    assert rows[0]["id"] == "urn:ngsi-ld:Resource:pump-9" and rows[0]["attrs"]["capability"] == ["pumping", "drainage"]
    bad = good + "boat-1,Boat,ship,rescue,1,,116.4,39.9,\nteam-2,Team,team,rescue,many,,x,39.9,\n"
    with pytest.raises(ValidationError) as err:
        parse_csv(bad, "r.csv")
    assert "r.csv:3: resourceType" in err.value.detail and "r.csv:4: lon/lat" in err.value.detail
    with pytest.raises(ValidationError, match="missing column"):
        parse_csv("id,name\nx,y\n")
