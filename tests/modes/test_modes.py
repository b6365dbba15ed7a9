"""Operating modes: declare, inherit, revert, broadcast event; a role that may not gets Forbidden, state unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.demo import load_demo_city
from citybrain.errors import Conflict, Forbidden, ValidationError
from citybrain.runtime import CityBrain

CITY = "urn:ngsi-ld:City:beijing-demo"
DISTRICT = "urn:ngsi-ld:District:dongcheng"
COMMUNITY = "urn:ngsi-ld:Community:dongcheng-1-1"


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[CityBrain]:
    settings = Settings(store=str(tmp_path / "modes.db"))
    async with CityBrain(settings, clock=FakeClock("2016-07-20T01:00:00Z"),
                         components=["citybrain.model.commands", "citybrain.modes"]) as brain:
        await load_demo_city(brain, "tiny")
        yield brain


async def test_declare_inherit_and_revert(rt: CityBrain) -> None:
    board = rt.ports.modes
    ctx = rt.context("command_centre:wang")
    assert board.mode_of(COMMUNITY)["mode"] == "normal"
    await rt.execute("mode.declare", {"area": DISTRICT, "mode": "watch", "reason": "rain forecast"}, ctx)
    got = await rt.execute("mode.declare", {"area": CITY, "mode": "emergency", "level": 3, "reason": "rainstorm"},
                           rt.context("city_operator:li"))
    assert got["from"] == {"mode": "normal", "level": None} and got["level"] == "III"
    assert board.mode_of(COMMUNITY) | {"since": None} == board.mode_of(COMMUNITY) | {
        "mode": "emergency", "level": "III", "from": CITY, "since": None}
    assert (await board.kpis())["level"] == "III"
    await rt.execute("mode.revert", {"area": CITY, "reason": "declared by mistake"}, ctx)
    assert board.mode_of(COMMUNITY)["mode"] == "watch"  # the district's own watch shows again
    assert board.mode_of(CITY)["mode"] == "normal"
    types = [e.type for e in await rt.store.events(type_prefix="mode")]
    assert types.count("mode.changed") == 3
    with pytest.raises(Conflict):
        await rt.execute("mode.revert", {"area": CITY}, ctx)


@pytest.mark.parametrize("actor", ["citizen:zhang", "dept:water:zhao", "community_operator:x", "grid_worker:y"])
async def test_role_that_may_not_is_forbidden_and_nothing_changes(rt: CityBrain, actor: str) -> None:
    before = await rt.store.events(limit=100_000)
    with pytest.raises(Forbidden, match="mode.declare needs role command_centre"):
        await rt.execute("mode.declare", {"area": CITY, "mode": "emergency", "level": "I"}, rt.context(actor))
    assert rt.ports.modes.mode_of(CITY)["mode"] == "normal"
    assert await rt.store.get_doc("modes", CITY) is None
    assert len(await rt.store.events(limit=100_000)) == len(before)


async def test_bad_declarations_are_clear_errors(rt: CityBrain) -> None:
    ctx = rt.context("admin:root")
    with pytest.raises(ValidationError, match="an emergency needs a level"):
        await rt.execute("mode.declare", {"area": CITY, "mode": "emergency"}, ctx)
    with pytest.raises(ValidationError, match="level"):
        await rt.execute("mode.declare", {"area": CITY, "mode": "emergency", "level": "V"}, ctx)
    with pytest.raises(Conflict, match="cannot go to recovery"):
        await rt.execute("mode.declare", {"area": CITY, "mode": "recovery"}, ctx)
    with pytest.raises(ValidationError, match="mode"):
        await rt.execute("mode.declare", {"area": CITY, "mode": "panic"}, ctx)
    assert await rt.store.get_doc("modes", CITY) is None


async def test_two_processes_see_one_mode_board(tmp_path: Path) -> None:
    """A mode declared through one process of the node is in force on the other, and decided on stored state."""
    from cases.node import Node

    clock = FakeClock("2016-07-20T01:00:00Z")
    node = Node(str(tmp_path / "modes2.db"), lambda: Settings(), ["citybrain.model.commands", "citybrain.modes"],
                clock=clock)
    async with node:
        a = await node.start()
        await load_demo_city(a, "tiny")
        b = await node.start()
        ctx = a.context("command_centre:wang")
        await a.execute("mode.declare", {"area": DISTRICT, "mode": "watch", "reason": "rain forecast"}, ctx)
        await node.settle()
        assert b.ports.modes.mode_of(COMMUNITY)["mode"] == "watch"
        # b decides on the stored state: escalating from watch is allowed, repeating watch is not
        with pytest.raises(Conflict):
            await b.execute("mode.declare", {"area": DISTRICT, "mode": "watch", "reason": "again"}, ctx)
        await b.execute("mode.declare", {"area": DISTRICT, "mode": "emergency", "level": 4, "reason": "rain"}, ctx)
        await node.settle()
        assert a.ports.modes.mode_of(COMMUNITY)["level"] == "IV"
        await a.execute("mode.revert", {"area": DISTRICT, "reason": "eased"}, ctx)  # a's copy was not stale
        await node.settle()
        assert b.ports.modes.declared(DISTRICT)["mode"] == "watch"
