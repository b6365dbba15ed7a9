"""Rules and detectors: judge every observation against the operations centre's rule file and the anomaly detector.

The rule file (YAML, `citybrain/rules/default.yaml` unless settings.extra["rules_file"] or the
CITYBRAIN_RULES_FILE environment variable name another) is validated at start: a bad file stops the
node with line-and-field errors instead of failing at 3 a.m. `rules.reload` re-reads it at run time.
Both rules and detectors produce Signals, handed to the sinks in rt.services["signals"] (risk, alerts).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.model.types import QUANTITY_UNITS
from citybrain.rules.detectors import Detectors
from citybrain.rules.engine import RuleEngine
from citybrain.rules.loader import RuleFileError, load_rules, parse_rules
from citybrain.rules.spec import Rule, Signal

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain
    from citybrain.situation import Located

__all__ = ["RuleFileError", "load_rules", "parse_rules", "Signal", "SignalHub", "known_quantities"]

Sink = Callable[[list[Signal]], Awaitable[None]]


def known_quantities() -> set[str]:
    """Return the quantity names a rule may use without declaring them."""
    names = set(QUANTITY_UNITS) | {"windDirection", "waterLevel", "noise", "humidity", "relativeHumidity"}
    try:
        from citybrain.demo.series import UNITS

        names |= set(UNITS)
    except ImportError:
        pass
    return names


class SignalHub:
    """Where rule and detector signals go: every sink gets every batch, in registration order."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.count = 0

    async def publish(self, signals: list[Signal]) -> None:
        """Hand a batch of signals to every sink."""
        if not signals:
            return
        self.count += len(signals)
        for sink in self.sinks:
            await sink(signals)


class RuleReload(msgspec.Struct, kw_only=True):
    """The rules.reload command: re-read the rule file (or another path)."""

    path: str | None = None


class Judge:
    """Runs rules and detectors on the located observations of the pipeline."""

    def __init__(self, rt: CityBrain, rules: list[Rule], path: str | None) -> None:
        self.rt = rt
        self.path = path
        self.hub: SignalHub = rt.services["signals"]
        self.engine = self._engine(rules)
        extra = rt.settings.extra
        self.detectors = Detectors(threshold=float(extra.get("detector_threshold", 0.99)),
                                   warmup=int(extra.get("detector_warmup", 72)))
        self.detect = bool(extra.get("detectors", True))

    def _engine(self, rules: list[Rule]) -> RuleEngine:
        places = self.rt.services["places"]
        types = {pid: p.type for r in rules for pid in r.pinned if (p := places.get(pid)) is not None}
        engine = RuleEngine(rules, types)
        engine.within = places.within
        return engine

    def reload(self, path: str | None = None) -> list[Rule]:
        """Re-read and validate the rule file; the old rules stay in force if it is bad."""
        rules = load_rules(path or self.path, known_quantities(), self.rt.services["places"])
        self.engine = self._engine(rules)
        self.path = path or self.path
        return rules

    async def on_rows(self, located: list[Located]) -> None:
        """Judge each numeric observation; pass the resulting signals on."""
        out: list[Signal] = []
        engine = self.engine
        detectors = self.detectors if self.detect else None
        for item in located:
            if item.value is None:
                continue
            row = item.row
            if row.attr in engine.by_quantity:
                out += engine.observe(row.entity_id, row.attr, item.ts, item.value, item.areas)
            if detectors is not None:
                sig = detectors.observe(row.entity_id, row.attr, item.ts, item.value, item.areas)
                if sig is not None:
                    out.append(sig)
        await self.hub.publish(out)

    async def sweep(self) -> list[Signal]:
        """Judge absence-of-data rules at the clock's time."""
        now = self.rt.clock.now().timestamp()
        if self.engine.newest and now - self.engine.newest > 86400:
            now = self.engine.newest  # a replay: the clock is far ahead of the data, judge by data time
        signals = self.engine.sweep(now)
        await self.hub.publish(signals)
        return signals

    async def sweep_loop(self, every: float) -> None:
        """Sweep every `every` seconds of clock time."""
        while True:
            await self.rt.clock.sleep(every)
            await self.sweep()

    def describe(self) -> list[dict[str, Any]]:
        """Return the loaded rules for the API."""
        return [{"id": r.id, "name": r.name, "category": r.category, "quantity": r.quantity, "scope": r.scope,
                 "levels": sorted(r.levels, key=["blue", "yellow", "orange", "red"].index), "line": r.line,
                 "overrides": [o.place for o in r.overrides], "scheduled": r.schedule is not None}
                for r in self.engine.rules]


async def _reload(rt: CityBrain, cmd: RuleReload, ctx: Context) -> Outcome:
    rules = rt.services["rules"].reload(cmd.path)
    return Outcome(result={"rules": len(rules)}, event={"path": cmd.path, "rules": [r.id for r in rules]})


async def setup(rt: CityBrain) -> None:
    """Load the rule file, create the judge and plug it into the situation pipeline."""
    rt.services.setdefault("signals", SignalHub())
    path = rt.settings.extra.get("rules_file") or os.environ.get("CITYBRAIN_RULES_FILE") or None
    rules = load_rules(path, known_quantities(), rt.services["places"])
    judge = Judge(rt, rules, path)
    rt.services["rules"] = judge
    rt.services["situation"].listeners.append(judge.on_rows)
    rt.commands.register("rules.reload", RuleReload, _reload, "re-read and validate the rule file")
    if judge.engine.sweep_rules:
        rt.spawn(judge.sweep_loop(float(rt.settings.extra.get("absence_sweep", 60.0))), name="rules-absence")
