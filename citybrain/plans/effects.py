"""What an active plan changes besides tasks: rule and detector overrides, and pre-positioned resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from citybrain.context import Context
from citybrain.plans.spec import Plan
from citybrain.plans.tasks import communities_of

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class Overrides:
    """Swaps the rule engine's rules and the detector threshold while plans are active, and restores them."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.saved: dict[str, tuple[list[Any], float]] = {}  # run id -> (rules, detector threshold) before

    async def apply(self, run_id: str, plan: Plan, ctx: Context) -> dict[str, Any] | None:
        """Put the plan's rule and detector overrides in force; emit plan.overrides.applied."""
        judge = self.rt.services.get("rules")
        if judge is None or (not plan.rules and plan.detector_threshold is None) or run_id in self.saved:
            return None
        from citybrain.rules import known_quantities, parse_rules

        before_rules = list(judge.engine.rules)
        before_threshold = float(judge.detectors.threshold)
        changed: list[dict[str, Any]] = []
        if plan.rules:
            text = yaml.safe_dump({"version": 1, "rules": plan.rules}, allow_unicode=True)
            new = parse_rules(text, f"{plan.source} overrides", known_quantities(), self.rt.services["places"])
            by_id = {r.id: r for r in new}
            merged = [by_id.pop(r.id, r) for r in before_rules] + list(by_id.values())
            judge.engine = judge._engine(merged)
            old = {r.id: r for r in before_rules}
            changed = [{"rule": r.id, "before": _levels(old.get(r.id)), "after": _levels(r)} for r in new]
        if plan.detector_threshold is not None:
            judge.detectors.threshold = plan.detector_threshold
        self.saved[run_id] = (before_rules, before_threshold)
        data = {"run": run_id, "plan": plan.id, "rules": changed,
                "detector_threshold": {"before": before_threshold, "after": judge.detectors.threshold}}
        await self.rt.emit("plan.overrides.applied", data, ctx.child())
        return data

    async def restore(self, run_id: str, plan: Plan, ctx: Context) -> None:
        """Put back the rules and threshold in force before the run; emit plan.overrides.restored."""
        saved = self.saved.pop(run_id, None)
        judge = self.rt.services.get("rules")
        if saved is None or judge is None:
            return
        rules, threshold = saved
        judge.engine = judge._engine(rules)
        judge.detectors.threshold = threshold
        await self.rt.emit("plan.overrides.restored", {"run": run_id, "plan": plan.id,
                                                       "rules": [r.get("id") for r in plan.rules],
                                                       "detector_threshold": threshold}, ctx.child())


def _levels(rule: Any) -> list[str]:
    return [] if rule is None else sorted(rule.levels)


def _targets(rt: CityBrain, area: str, to: str) -> list[str]:
    """Return the communities to pre-position at, most populous first."""
    places = rt.services["places"]
    if to in ("all", "low-lying"):
        coms = communities_of(rt, area, to)
    else:
        coms = [to] if to in places else []

    def people(com: str) -> int:
        return sum(int((places.get(g).value("population", 0) if places.get(g) else 0) or 0)
                   for g in places.children.get(com, []))

    return sorted(coms, key=lambda c: (-people(c), c))


async def preposition(rt: CityBrain, run: dict[str, Any], plan: Plan, ctx: Context) -> dict[str, Any] | None:
    """Open an incident per target community for the plan's resources and dispatch them (dispatch.run)."""
    if not plan.resources or "dispatch" not in rt.services:
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
    if "dispatch" not in rt.services:
        return 0
    n = 0
    for inc in await rt.services["dispatch"].incidents():
        if inc.get("plan") == run_id and inc["state"] != "closed":
            await rt.execute("dispatch.release", {"incident": inc["id"], "note": "plan ended"}, ctx.child())
            n += 1
    return n
