"""rules.reload puts the rule file in force on every process of a node, also on one started later.

The process that runs the command reads its file and stores the text as the node's rule set; the others
follow the command's event and judge by the stored text, not by their own copies of the file (which may
differ between machines). A bad file is refused on the process that read it and changes nothing anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cases.node import Node, nats_ready, pg_url, until

from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.demo import load_demo_city
from citybrain.demo.series import local_iso
from citybrain.drill import components
from citybrain.rules import RuleFileError
from citybrain.rules.loader import DEFAULT_FILE
from citybrain.runtime import CityBrain

ADMIN = "admin:li"


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def url() -> Iterator[str]:
    yield from pg_url()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "nats":
        nats_ready()
    return str(request.param)


def blue_bound(rt: CityBrain) -> float:
    rule = next(r for r in rt.ports.rules.engine.rules if r.id == "short-heavy-rain")
    return float(rule.levels["blue"].of.above)


def stricter(tmp_path: Path, bound: int = 15) -> Path:
    """The shipped rule file with short-heavy-rain's blue bound at `bound` mm instead of 20."""
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    old = "blue: {at_least: 1, of: {stat: sum, window: 1h, above: 20}}"
    assert text.count(old) == 1, "the shipped rule file changed: adjust this test"
    path = tmp_path / f"rules-{bound}.yaml"
    path.write_text(text.replace(old, old.replace("above: 20", f"above: {bound}")), encoding="utf-8")
    return path


@pytest.mark.timeout(120)
async def test_reload_on_one_process_is_in_force_on_every_process_and_after_restart(
        url: str, bus_kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def settings() -> Settings:
        return Settings(extra={"cases": {"checker": False}, "plans_sweep": 1e9})

    async with Node(url, settings, components(), bus_kind, FakeClock(local_iso("2016-07-20 07:00"))) as node:
        a = await node.start()
        await load_demo_city(a, "tiny")
        b = await node.start()
        assert blue_bound(a) == blue_bound(b) == 20.0
        got = await a.execute("rules.reload", {"path": str(stricter(tmp_path))}, a.context(ADMIN))
        assert got["rules"] >= 4
        await node.settle()

        async def both() -> bool:
            return blue_bound(a) == blue_bound(b) == 15.0

        await until(both, what="the reloaded rule file on both processes")

        bad = tmp_path / "bad.yaml"
        bad.write_text("version: 1\nrules:\n  - id: x\n    quantity: precipitation\n    levels: {blue: {above: lots}}\n",
                       encoding="utf-8")
        with pytest.raises(RuleFileError):
            await b.execute("rules.reload", {"path": str(bad)}, b.context(ADMIN))
        await node.settle()
        assert blue_bound(a) == blue_bound(b) == 15.0  # the bad file changed nothing anywhere

        await node.stop(b)
        await node.stop(a)
        caplog.set_level(logging.WARNING, "citybrain.rules")
        c = await node.start()  # its own file is the shipped one: it judges by the node's rule set
        assert blue_bound(c) == 15.0
        assert "differs from this process's" in caplog.text
        await c.execute("rules.reload", {}, c.context(ADMIN))  # back to the file (the path stored last time)
        await node.settle()
        assert blue_bound(c) == 15.0
        await c.execute("rules.reload", {"path": str(DEFAULT_FILE)}, c.context(ADMIN))
        d = await node.start()
        await node.settle()
        assert blue_bound(c) == blue_bound(d) == 20.0
        reloads = [e for e in await d.store.events(type_prefix="command.rules.reload", limit=100)]
        assert len(reloads) == 3 and all(e.context.actor == ADMIN for e in reloads)


@pytest.mark.timeout(60)
async def test_one_process_on_sqlite_keeps_the_reloaded_rules_across_a_restart(tmp_path: Path) -> None:
    def settings() -> Settings:
        return Settings(store=str(tmp_path / "one.db"), extra={"cases": {"checker": False}, "plans_sweep": 1e9})

    async with CityBrain(settings(), components=components()) as rt:
        await load_demo_city(rt, "tiny")
        await rt.execute("rules.reload", {"path": str(stricter(tmp_path, 12))}, rt.context(ADMIN))
        assert blue_bound(rt) == 12.0
    async with CityBrain(settings(), components=components()) as again:
        assert blue_bound(again) == 12.0
