"""citybrain.testing: the test-city builder and the running node it gives tests (and integrators' tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.testing import START, Sensor, TestCity, build, running

CITY = TestCity(sensors=(Sensor("WeatherObserved", attrs={"precipitation": {"type": "Property", "value": 0.0}}),
                         Sensor("AirQualityObserved", id="urn:ngsi-ld:AirQualityObserved:aq-{n}", placed=False,
                                at=(0.25, 0.75))),
                population=lambda i, j: 1000 * (1 + i))


def test_urns_polygons_and_helpers() -> None:
    assert CITY.cell(1, 2) == "urn:ngsi-ld:Grid:g12" and CITY.community(3, 1) == "urn:ngsi-ld:Community:m2"
    assert CITY.community(0, 3) == "urn:ngsi-ld:Community:m3" and CITY.district(0, 3) == "urn:ngsi-ld:District:d2"
    assert CITY.communities() == [f"urn:ngsi-ld:Community:m{n}" for n in (1, 2, 3, 4)]
    assert CITY.box(1, 2)["coordinates"][0][0] == [116.1, 39.9] and CITY.centre(0, 0) == pytest.approx((116.05, 39.825))
    assert CITY.sensor(2, 3) == "urn:ngsi-ld:WeatherObserved:g23"
    assert CITY.sensor(0, 1, "AirQualityObserved") == "urn:ngsi-ld:AirQualityObserved:aq-5"
    places = CITY.places()
    assert len(places) == 1 + 2 * 2 + 4 + 16 and len(CITY.sensor_entities()) == 32
    seen: set[str] = set()
    for p in places:  # parents first
        assert p["place"] is None or p["place"] in seen, p["id"]
        seen.add(p["id"])
    with pytest.raises(IndexError):
        CITY.cell(4, 0)
    row = TestCity(cols=8, rows=1, k=1, districts=1, city="urn:ngsi-ld:City:t", cell_id="urn:ngsi-ld:Grid:c{n0}g",
                   community_id="urn:ngsi-ld:Community:c{n0}", district_id="urn:ngsi-ld:District:d",
                   subdistrict_id="urn:ngsi-ld:Subdistrict:s", geometry=False)
    assert row.cell(7) == "urn:ngsi-ld:Grid:c7g" and row.subdistrict(3) == "urn:ngsi-ld:Subdistrict:s"
    assert all("location" not in p for p in row.places())


async def test_running_city_has_places_parents_and_located_sensors(tmp_path: Path) -> None:
    async with running(CITY, directory=tmp_path) as (rt, client, clock):
        places = rt.ports.places
        assert places.ancestors(CITY.cell(3, 3)) == [
            "urn:ngsi-ld:Community:m4", "urn:ngsi-ld:Subdistrict:s2", "urn:ngsi-ld:District:d2", CITY.city]
        assert len(places.cells_of(CITY.city)) == 16
        for i, j in CITY.cells():
            assert places.locate(*CITY.centre(i, j)) == CITY.cell(i, j)
            for kind in ("WeatherObserved", "AirQualityObserved"):  # placed, or located by its point
                sensor = await rt.store.get_entity(CITY.sensor(i, j, kind))
                assert sensor is not None and sensor.place == CITY.cell(i, j), (i, j, kind)
        cell = await rt.store.get_entity(CITY.cell(2, 0))
        assert cell is not None and cell.attrs["population"]["value"] == 3000
        assert (tmp_path / "city.db").exists()

        r = await client.get(f"/api/v1/entities/{CITY.sensor(1, 1)}")
        assert r.status_code == 200, r.text
        assert CITY.cell(1, 1) in (await client.get("/api/v1/places")).text

        assert rt.clock.now() == clock.now() and clock.now().isoformat().startswith(START[:19])
        clock.advance(3600)
        assert clock.now().hour == 2 and rt.clock.now() == clock.now()


async def test_settings_overrides_and_an_empty_node() -> None:
    async with running(None, node_id="elsewhere", extra={"detectors": False},
                       components=["citybrain.model.commands"], extensions=[]) as (rt, client, _):
        assert rt.settings.node_id == "elsewhere" and rt.settings.extra["detectors"] is False
        assert rt.ports.places.cells_of(CITY.city) == []
        await build(rt, TestCity(cols=1, rows=1, k=1, districts=1))
        assert "urn:ngsi-ld:Grid:g00" in rt.ports.places
        assert (await client.get("/api/v1/cases")).status_code == 404  # the cases routes are not mounted


def test_import_is_light() -> None:
    code = ("import sys, citybrain.testing; "
            "bad = [m for m in ('pytest', 'httpx', 'fastapi', 'citybrain.api', 'citybrain.cases', 'citybrain.situation')"
            " if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_integrator_example_runs(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "integrator.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Testing your integration with citybrain.testing"):]
    example = section[section.index("```python\n") + 10:section.index("\n```", section.index("```python"))]
    (tmp_path / "example.py").write_text(example, encoding="utf-8")
    subprocess.run([sys.executable, str(tmp_path / "example.py")], check=True, timeout=120, cwd=tmp_path)
