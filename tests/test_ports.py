"""The typed ports: a missing port names itself, optional lookups return None, `own` checks the class."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.config import Settings
from citybrain.model.places import PlaceIndex
from citybrain.ports import MissingPort, Ports
from citybrain.runtime import CityBrain


def test_a_port_nobody_set_raises_with_its_name() -> None:
    ports = Ports()
    with pytest.raises(MissingPort, match="'cases'"):
        _ = ports.cases
    assert ports.find(Ports.cases) is None
    assert not ports.has(Ports.cases)
    assert ports.find_own(Ports.places, PlaceIndex) is None


def test_own_returns_the_providers_class_and_refuses_another() -> None:
    ports = Ports()
    index = PlaceIndex()
    ports.places = index
    assert ports.places is index
    assert ports.own(Ports.places, PlaceIndex) is index
    assert ports.find_own(Ports.places, PlaceIndex) is index
    with pytest.raises(TypeError, match="PlaceIndex, not a Ports"):
        ports.own(Ports.places, Ports)
    assert ports.provided() == ["places"] and "places" in repr(ports)


async def test_a_node_sets_the_ports_of_its_components(tmp_path: Path) -> None:
    async with CityBrain(Settings(store=str(tmp_path / "city.db"))) as rt:
        assert {"places", "directory", "ingest", "pipeline", "situation", "rules", "signals", "risk", "alerts",
                "cases", "plans", "modes", "dispatch", "federation", "ledger", "auth"} <= set(rt.ports.provided())
        assert rt.ports.find(Ports.mqtt) is None  # no broker configured
        assert not set(rt.ports.provided()) - set(Ports.names())
    async with CityBrain(Settings(store=str(tmp_path / "bare.db")), components=["citybrain.model.commands"]) as rt:
        assert rt.ports.provided() == ["directory", "places"]
        with pytest.raises(MissingPort, match="'ingest'"):
            await rt.ports.ingest.submit([], None)
