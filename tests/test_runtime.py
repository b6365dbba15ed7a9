"""The runtime: commands with contexts, the city model, ingest, restart durability, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.context import Context
from citybrain.errors import AlreadyExists, NotFound, ValidationError
from citybrain.runtime import CityBrain
from citybrain.testing import Sensor, TestCity, build

# city bj > district d1 > subdistrict s1 > community c1 > cell g1, one air-quality sensor s1 located by its point
CITY = TestCity(cols=1, rows=1, k=1, districts=1, city="urn:ngsi-ld:City:bj", cell_id="urn:ngsi-ld:Grid:g{n}",
                community_id="urn:ngsi-ld:Community:c{n}", origin=(116.0, 39.0), size=(0.5, 0.5), names=True,
                sensors=(Sensor("AirQualityObserved", "urn:ngsi-ld:AirQualityObserved:s{n}", at=(0.4, 0.4),
                                placed=False),))


def place(pid: str, ptype: str, parent: str | None) -> dict:
    return {"entity": {"id": pid, "type": ptype, "place": parent, "location": CITY.box(0)}}


def runtime(tmp_path: Path, clock: FakeClock | None = None) -> CityBrain:
    return CityBrain(Settings(store=str(tmp_path / "city.db"), bus="memory"), clock=clock or FakeClock())


async def test_commands_write_state_and_events(tmp_path: Path) -> None:
    async with runtime(tmp_path) as rt:
        await build(rt, CITY)
        sensor = await rt.store.get_entity("urn:ngsi-ld:AirQualityObserved:s1")
        assert sensor is not None and sensor.place == "urn:ngsi-ld:Grid:g1"  # located by its point
        ctx = Context(actor="operator:alice", origin="city")
        await rt.execute("entity.update", {"id": "urn:ngsi-ld:Grid:g1", "attrs": {"population": 1200}}, ctx)
        events = await rt.store.events(type_prefix="command.entity.update")
        assert events[-1].context.actor == "operator:alice" and events[-1].context.id == ctx.id
        assert len(ctx.id) == 26  # ULID
        places = rt.ports.places
        assert places.ancestors("urn:ngsi-ld:Grid:g1") == [
            "urn:ngsi-ld:Community:c1", "urn:ngsi-ld:Subdistrict:s1", "urn:ngsi-ld:District:d1", "urn:ngsi-ld:City:bj"]
        assert places.cells_of("urn:ngsi-ld:District:d1") == ["urn:ngsi-ld:Grid:g1"]


async def test_bad_model_input_names_the_field(tmp_path: Path) -> None:
    async with runtime(tmp_path) as rt:
        await build(rt, CITY)
        with pytest.raises(ValidationError) as err:
            await rt.execute("entity.write", place("urn:ngsi-ld:Grid:g9", "Grid", "urn:ngsi-ld:Community:nope"))
        assert err.value.field == "place" and "unknown place" in err.value.detail
        with pytest.raises(ValidationError) as err:
            await rt.execute("entity.write", place("urn:ngsi-ld:Community:c9", "Community", "urn:ngsi-ld:Grid:g1"))
        assert err.value.field == "place"
        with pytest.raises(ValidationError) as err:
            await rt.execute("entity.write", {"entity": {"id": "not a urn", "type": "Device"}})
        assert err.value.field == "id"
        with pytest.raises(ValidationError) as err:
            await rt.execute("entity.write", {"entity": {"type": "Device"}})
        assert err.value.field == "entity.id"
        with pytest.raises(AlreadyExists):
            await rt.execute("entity.write", place("urn:ngsi-ld:City:bj", "City", None))
        with pytest.raises(NotFound):
            await rt.execute("entity.delete", {"id": "urn:ngsi-ld:Device:none"})


async def test_ingest_validates_stores_and_survives_restart(tmp_path: Path) -> None:
    sensor = "urn:ngsi-ld:AirQualityObserved:s1"
    async with runtime(tmp_path) as rt:
        await build(rt, CITY)
        report = await rt.ports.ingest.submit([
            {"entity": sensor, "attr": "pm25", "value": 80.0, "observedAt": "2016-07-20T08:00:00Z"},
            {"entity": sensor, "observedAt": "2016-07-20T09:00:00+08:00", "values": {"pm25": 81, "pm10": 120}},
            {"entity": "urn:ngsi-ld:AirQualityObserved:ghost", "attr": "pm25", "value": 1, "observedAt": "2016-07-20T08:00:00Z"},
            {"entity": sensor, "attr": "pm25", "value": "x" * 20000, "observedAt": "2016-07-20T08:00:00Z"},
            {"entity": sensor, "attr": "pm25", "value": 1, "observedAt": "20/07/2016 08:00"},
            {"entity": sensor, "attr": "pm 2.5", "value": 1, "observedAt": "2016-07-20T08:00:00Z"},
            {"entity": sensor, "attr": "pm25", "value": None, "observedAt": "2016-07-20T08:00:00Z"},
            "garbage",
        ])
        assert report.stored == 3
        assert [(r.index, r.field) for r in report.rejected] == [
            (2, "entity"), (3, "value"), (4, "observedAt"), (5, "attr"), (6, "value"), (7, "observation")]
        letters = await rt.store.deadletters()
        assert len(letters) == 6 and "unknown sensor" in letters[0].reason
    async with runtime(tmp_path) as rt:  # restart on the same file
        entity = await rt.store.get_entity(sensor)
        assert entity is not None
        assert entity.attrs["pm25"]["value"] == 80.0  # 09:00+08:00 is 01:00Z, older than 08:00Z
        assert entity.attrs["pm10"]["observedAt"] == "2016-07-20T01:00:00.000Z"
        history = await rt.store.history(sensor, "pm25")
        assert [h.value for h in history] == [81, 80.0]
        assert "urn:ngsi-ld:Grid:g1" in rt.ports.places


def test_component_variables_are_read_once_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Components read their CITYBRAIN_* variables from the settings (as from_env saw them), not from os.environ
    at run time: a node's behaviour is fixed by its settings, and /-/settings names (never shows) them."""
    from citybrain.config import Settings

    env = {"CITYBRAIN_STORE": "x.db", "CITYBRAIN_OPEN311_API_KEYS": "k1,k2", "CITYBRAIN_RULES_FILE": "r.yaml",
           "CITYBRAIN_EXTRA": "{}", "OTHER": "1"}
    s = Settings.from_env(env)
    assert s.store == "x.db" and s.env("OPEN311_API_KEYS") == "k1,k2" and s.env("rules_file") == "r.yaml"
    assert set(s.environ) == {"CITYBRAIN_OPEN311_API_KEYS", "CITYBRAIN_RULES_FILE"}
    assert s.public()["environ"] == ["CITYBRAIN_OPEN311_API_KEYS", "CITYBRAIN_RULES_FILE"]
    assert "k1" not in repr(s)
    monkeypatch.setenv("CITYBRAIN_OPEN311_API_KEYS", "changed")
    assert s.env("OPEN311_API_KEYS") == "k1,k2"  # read once
    assert Settings().env("OPEN311_API_KEYS") == ""  # the library's Settings() reads no environment
