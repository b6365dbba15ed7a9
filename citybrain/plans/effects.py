"""What an active plan changes besides tasks: rule and detector overrides, and pre-positioned resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citybrain.context import Context
from citybrain.plans.spec import Plan
from citybrain.plans.tasks import communities_of
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Overrides:
    """Puts a plan's rule and detector overrides in force while its run is active, and ends them.

    Both are commands of the rules component (rules.override / rules.restore, keyed by the run): the override
    is a stored document that every process applies from its event and re-applies when it starts, so it holds
    node-wide, survives restarts, and is ended by whichever process ends the run."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt

    async def apply(self, run_id: str, plan: Plan, ctx: Context) -> dict[str, Any] | None:
        """Put the plan's rule and detector overrides in force; emit plan.overrides.applied."""
        if "rules.override" not in self.rt.commands or (not plan.rules and plan.detector_threshold is None):
            return None
        got = await self.rt.execute("rules.override", {
            "key": run_id, "source": f"{plan.source} overrides", "rules": plan.rules,
            "detector_threshold": plan.detector_threshold}, ctx.child())
        data = {"run": run_id, "plan": plan.id, "rules": got["rules"], "detector_threshold": got["detector_threshold"]}
        await self.rt.emit("plan.overrides.applied", data, ctx.child())
        return data

    async def restore(self, run_id: str, plan: Plan, ctx: Context) -> None:
        """End the run's overrides (what was in force before holds again); emit plan.overrides.restored."""
        if "rules.restore" not in self.rt.commands:
            return
        got = await self.rt.execute("rules.restore", {"key": run_id}, ctx.child())
        if got["restored"]:
            await self.rt.emit("plan.overrides.restored", {"run": run_id, "plan": plan.id, "rules": got["rules"],
                                                           "detector_threshold": got["detector_threshold"]},
                               ctx.child())


def _targets(rt: CityBrain, area: str, to: str) -> list[str]:
    """Return the communities to pre-position at, most populous first."""
    places = rt.ports.places
    if to in ("all", "low-lying"):
        coms = communities_of(rt, area, to)
    else:
        coms = [to] if to in places else []

    def people(com: str) -> int:
        cells = (places.get(g) for g in places.children.get(com, []))
        return sum(int(cell.value("population", 0) or 0) for cell in cells if cell is not None)

    return sorted(coms, key=lambda c: (-people(c), c))


async def preposition(rt: CityBrain, run: dict[str, Any], plan: Plan, ctx: Context) -> dict[str, Any] | None:
    """Open an incident per target community for the plan's resources and dispatch them (dispatch.run)."""
    if not plan.resources or not rt.ports.has(Ports.dispatch):
        return None
    ids: list[str] = []
    for p in plan.resources:
        targets = _targets(rt, run["area"], p.to)[:p.units]
        for i, com in enumerate(targets):
            units = p.units // len(targets) + (1 if i < p.units % len(targets) else 0)
            got = await rt.execute("incident.open", {
                "title": f"[{plan.id}] pre-position {p.capability}", "place": com,
                "needs": [{"capability": p.capability, "units": units}], "source": f"plan:{plan.id}",
                "plan": run["id"]}, ctx.child())
            ids.append(got["id"])
    if not ids:
        return None
    result: dict[str, Any] = await rt.execute("dispatch.run", {"incidents": ids}, ctx.child())
    return result


async def release(rt: CityBrain, run_id: str, ctx: Context) -> int:
    """Close the run's incidents (dispatch.release): its resources become available again."""
    if not rt.ports.has(Ports.dispatch):
        return 0
    n = 0
    for inc in await rt.ports.dispatch.incidents():
        if inc.get("plan") == run_id and inc["state"] != "closed":
            await rt.execute("dispatch.release", {"incident": inc["id"], "note": "plan ended"}, ctx.child())
            n += 1
    return n
