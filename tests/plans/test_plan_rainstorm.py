"""The rainstorm plan end to end on the recorded 20 July 2016 rainstorm, with a person confirming.

Trigger fires → level proposed → a department handler may not confirm → the command centre confirms →
departments and communities get tasks (department tasks become cases) → thresholds change → resources are
dispatched → a higher level is proposed and confirmed → the rain stops: the plan ends → recovery → normal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.clock import FakeClock, parse_time
from citybrain.config import Settings
from citybrain.demo import Replay, load_demo_city
from citybrain.demo.series import local_iso
from citybrain.drill import components, settle
from citybrain.drill.handlers import Handlers
from citybrain.errors import Forbidden
from citybrain.runtime import CityBrain

CITY = "urn:ngsi-ld:City:beijing-demo"


def _blue_bound(rt: CityBrain) -> float:
    rule = next(r for r in rt.ports.rules.engine.rules if r.id == "short-heavy-rain")
    return float(rule.levels["blue"].of.above)


@pytest.mark.timeout(60)
async def test_rainstorm_plan_end_to_end(tmp_path: Path) -> None:
    start, end = local_iso("2016-07-20 07:00"), local_iso("2016-07-21 15:00")
    clock = FakeClock(start)
    settings = Settings(store=str(tmp_path / "rain.db"), extra={"plans": ["rainstorm"], "cases": {"checker": False}})
    async with CityBrain(settings, clock=clock, components=components()) as rt:
        await load_demo_city(rt, "tiny")
        desk, board = rt.ports.plans, rt.ports.modes
        replay = Replay(rt, speed=0, start=start, end=end, loop=False)
        handlers = Handlers(rt)
        assert _blue_bound(rt) == 20.0
        seen: dict[str, object] = {}
        for when, _ in list(replay.hours):
            if parse_time(when) > clock.now():
                clock.set(when)
            await replay.step()
            await settle(rt)
            run = desk.run_of("rainstorm")
            if run and run.get("pending_level"):
                if "forbidden" not in seen:
                    with pytest.raises(Forbidden):
                        await rt.execute("plan.confirm", {"run": run["id"]}, rt.context("dept:water:zhao"))
                    assert desk.run_of("rainstorm")["state"] == run["state"]
                    seen["forbidden"] = True
                await rt.execute("plan.confirm", {"run": run["id"], "reason": "confirmed on duty"},
                                 rt.context("command_centre:wang"))
                await settle(rt)
                seen.setdefault("bound", _blue_bound(rt))
                seen.setdefault("mode", board.mode_of("urn:ngsi-ld:Community:dongcheng-1-1")["mode"])
            for _ in range(3):
                clock.advance(1200)
                await settle(rt)
                await handlers.act()
        for _ in range(6 * 24):  # no more data: let the recovery time pass
            if desk.run_of("rainstorm") is None and board.mode_of(CITY)["mode"] == "normal":
                break
            clock.advance(600)
            await handlers.act()
            await settle(rt)

        runs = [d.data for d in await rt.store.list_docs("plan_runs")]
        assert len(runs) == 1
        run = runs[0]
        assert run["state"] == "closed" and run["level"] == "III" and run["confirmed_by"] == "command_centre:wang"
        assert [p["level"] for p in run["proposals"]] == ["IV", "III"]
        assert run["proposals"][0]["trigger"] == "heavy-rain-rising"
        assert seen == {"forbidden": True, "bound": 10.0, "mode": "emergency"}
        assert _blue_bound(rt) == 20.0  # thresholds restored when the plan ended
        assert board.mode_of(CITY)["mode"] == "normal"

        tasks = [d.data for d in await rt.store.list_docs("plan_tasks", limit=10_000)]
        departments = {t["department"] for t in tasks if t["kind"] == "department"}
        assert departments == {"water", "urban", "emergency", "transport", "police", "health", "meteorology"}
        assert len({t["assignee"] for t in tasks if t["kind"] == "community"}) == 16
        assert all(t["state"] == "done" for t in tasks)
        assert any(t["case"] for t in tasks)  # department tasks became cases of coordinated disposal
        incidents = await rt.ports.dispatch.incidents()
        assert incidents and all(i["state"] == "closed" and i["assignments"] for i in incidents)
        used = {a["resource"] for i in incidents for a in i["assignments"]}
        assert {"urn:ngsi-ld:Resource:pump-truck-1", "urn:ngsi-ld:Resource:shelter-1"} & used

        types = [e.type for e in await rt.store.events(limit=100_000)]
        for step in ("command.plan.propose", "command.plan.confirm", "command.mode.declare", "mode.changed",
                     "command.plan.tasks.issue", "command.case.dispatch", "plan.overrides.applied",
                     "command.incident.open", "command.dispatch.run", "command.plan.task.ack",
                     "command.plan.task.done", "command.plan.report", "command.plan.end",
                     "plan.overrides.restored", "command.dispatch.release", "command.plan.close"):
            assert step in types, step
        modes = [e.data["mode"] for e in await rt.store.events(type_prefix="mode.changed", limit=100)]
        assert modes == ["emergency", "emergency", "recovery", "normal"]
