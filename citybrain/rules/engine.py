"""Evaluate the rules on every observation, per sensor or per place, and report level changes as signals.

The units (what the engine remembers per sensor and place) of a community's sensors, cells and the community
itself go with the community's pipeline partition: `units_of(part, part_of)` selects them for a checkpoint,
and `restore_units` / `drop_units` move them between processes.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

from citybrain.clock import iso_of
from citybrain.rules.spec import SCOPE_TYPE, Absent, Cond, Count, Group, Rate, Rule, Threshold
from citybrain.signals import LEVELS, Signal
from citybrain.windows import Rolling

_LOOKBACK = 86400.0 * 7  # rate samples older than this are never needed


class Unit:
    """What the engine remembers about one sensor or one place, for the rules that watch it."""

    __slots__ = ("id", "level", "cell", "community", "last", "rolls", "rates", "since", "members", "sensors", "levels")

    def __init__(self, unit_id: str, level: str) -> None:
        self.id = unit_id
        self.level = level
        self.cell: str | None = None
        self.community: str | None = None
        self.last: dict[str, tuple[float, float]] = {}
        self.rolls: dict[tuple[str, float], Rolling] = {}
        self.rates: dict[tuple[str, float], deque[tuple[float, float]]] = {}
        self.since: dict[int, float] = {}
        self.members: dict[int, set[str]] = {}
        self.sensors: dict[str, set[str]] = {}
        self.levels: dict[str, str] = {}


class RuleEngine:
    """Holds the loaded rules and one Unit per sensor/place; turns observations into Signals."""

    def __init__(self, rules: list[Rule], place_type: dict[str, str] | None = None) -> None:
        self.rules = rules
        self.units: dict[tuple[str, str], Unit] = {}
        self.newest = 0.0  # latest observation time judged (data time)
        self.by_quantity: dict[str, list[Rule]] = {}
        self.needs: dict[tuple[str, str], set[float]] = {}  # (unit level, quantity) -> windows
        self.rate_needs: dict[tuple[str, str], set[float]] = {}
        self.levels_fed: set[str] = set()
        self.sweep_rules = [r for r in rules if any(self._has_absent(c) for c in self._conds(r))]
        self.pinned: dict[str, list[Rule]] = {}
        types = {v: k for k, v in SCOPE_TYPE.items()}
        for rule in rules:
            for q in rule.quantities:
                self.by_quantity.setdefault(q, []).append(rule)
            self.levels_fed.add(rule.scope)
            for place in rule.pinned:
                self.pinned.setdefault(place, []).append(rule)
            for cond in self._conds(rule):
                self._collect(cond, rule.scope, place_type or {}, types)

    @staticmethod
    def _conds(rule: Rule) -> list[Cond]:
        out = list(rule.levels.values())
        for o in rule.overrides:
            out += list((o.levels or {}).values())
        return out

    def _has_absent(self, c: Cond) -> bool:
        if isinstance(c, Absent):
            return True
        if isinstance(c, Group):
            return any(self._has_absent(p) for p in c.parts)
        return isinstance(c, Count) and c.of is not None and self._has_absent(c.of)

    def _collect(self, c: Cond, level: str, place_type: dict[str, str], types: dict[str, str]) -> None:
        if isinstance(c, Threshold):
            lvl = types.get(place_type.get(c.place, ""), level) if c.place else level
            self.levels_fed.add(lvl)
            if c.stat != "value":
                self.needs.setdefault((lvl, c.quantity), set()).add(c.window)
        elif isinstance(c, Rate):
            self.rate_needs.setdefault((level, c.quantity), set()).add(c.per)
        elif isinstance(c, Group):
            for p in c.parts:
                self._collect(p, level, place_type, types)
        elif isinstance(c, Count) and c.of is not None:
            self.levels_fed.add("sensor")
            self._collect(c.of, "sensor", place_type, types)

    def unit(self, level: str, unit_id: str) -> Unit:
        """Return (creating) the state of a sensor or place."""
        u = self.units.get((level, unit_id))
        if u is None:
            u = self.units[(level, unit_id)] = Unit(unit_id, level)
        return u

    # feeding ---------------------------------------------------------------------------------
    def observe(self, entity: str, quantity: str, ts: float, value: float, areas: dict[str, str]) -> list[Signal]:
        """Take one numeric observation (areas: scope level → place id) and return the signals it causes."""
        rules = self.by_quantity.get(quantity)
        if not rules:
            return []
        if ts > self.newest:
            self.newest = ts
        sensor = self.unit("sensor", entity)
        sensor.cell = areas.get("grid")
        sensor.community = areas.get("community")
        for level in self.levels_fed:
            target = sensor if level == "sensor" else None
            if target is None:
                pid = areas.get(level)
                if pid is None:
                    continue
                target = self.unit(level, pid)
                target.cell = areas.get("grid") if level == "grid" else pid
                target.community = areas.get("community")
                target.sensors.setdefault(quantity, set()).add(entity)
            self._feed(target, level, quantity, ts, value)
        out: list[Signal] = []
        for rule in rules:
            unit = sensor if rule.scope == "sensor" else self.units.get((rule.scope, areas.get(rule.scope, "")))
            if unit is not None:
                self._judge(rule, unit, ts, sensor, out, entity, quantity, value)
        for pid in (areas.get(lvl) for lvl in ("grid", "community", "subdistrict", "district", "city")):
            for rule in self.pinned.get(pid or "", []):
                for (lvl, _), unit in list(self.units.items()):
                    if lvl == rule.scope and unit.id != areas.get(rule.scope):
                        self._judge(rule, unit, ts, None, out, entity, quantity, value)
        return out

    # partitions ------------------------------------------------------------------------------
    def units_of(self, part: int, part_of: Callable[[str | None], int]) -> dict[tuple[str, str], Unit]:
        """Return the units of one partition (part_of: community → partition)."""
        return {k: u for k, u in self.units.items() if part_of(u.community) == part}

    def restore_units(self, units: dict[tuple[str, str], Unit], same_rules: bool) -> None:
        """Take units back from a checkpoint; timers and members are kept only if the rules are the same."""
        for key, unit in units.items():
            if not same_rules:  # condition keys may mean other conditions now: restart "for" timers and counts
                unit.since.clear()
                unit.members.clear()
            self.units[key] = unit

    def drop_units(self, part: int, part_of: Callable[[str | None], int]) -> None:
        """Forget the units of one partition."""
        for key in [k for k, u in self.units.items() if part_of(u.community) == part]:
            del self.units[key]

    def _feed(self, u: Unit, level: str, q: str, ts: float, value: float) -> None:
        old = u.last.get(q)
        if old is None or ts >= old[0]:
            u.last[q] = (ts, value)
        for w in self.needs.get((level, q), ()):
            roll = u.rolls.get((q, w))
            if roll is None:
                roll = u.rolls[(q, w)] = Rolling(w)
            roll.add(ts, value)
        for per in self.rate_needs.get((level, q), ()):
            samples = u.rates.get((q, per))
            if samples is None:
                samples = u.rates[(q, per)] = deque()
            samples.append((ts, value))
            while samples and samples[0][0] < ts - min(per, _LOOKBACK):
                samples.popleft()

    def sweep(self, now: float) -> list[Signal]:
        """Re-judge the rules with an absence condition at clock time `now`."""
        out: list[Signal] = []
        for rule in self.sweep_rules:
            for (lvl, _), unit in list(self.units.items()):
                if lvl == rule.scope:
                    self._judge(rule, unit, now, None, out, None, rule.quantity, None)
        return out

    # judging ---------------------------------------------------------------------------------
    def _judge(self, rule: Rule, unit: Unit, ts: float, sensor: Unit | None, out: list[Signal],
               entity: str | None, quantity: str, value: float | None) -> None:
        conds = self.conditions(rule, unit)
        level = "none"
        if conds is not None and (rule.schedule is None or rule.schedule.active(ts)):
            for name in LEVELS:  # evaluate every level: each keeps its own "for" timers
                cond = conds.get(name)
                if cond is not None and self.holds(cond, unit, ts, sensor):
                    level = name
        previous = unit.levels.get(rule.id, "none")
        if level == previous:
            return
        unit.levels[rule.id] = level
        evidence = self.explain(conds[level], unit, ts) if conds and level in conds else []
        out.append(Signal(source="rule", source_id=rule.id, unit=unit.id, level=level, category=rule.category,
                          place=sensor.cell if sensor is not None else unit.cell, community=unit.community, observed_at=iso_of(ts), ts=ts,
                          quantity=quantity, entity=entity, value=value, evidence=evidence, scope=rule.scope,
                          rule_name=rule.name, sub_category=rule.sub_category))

    def conditions(self, rule: Rule, unit: Unit) -> dict[str, Cond] | None:
        """Return the level conditions that apply to a unit (an override for its place, or the rule's)."""
        if rule.overrides:
            where = unit.cell if unit.level == "sensor" else unit.id
            for o in rule.overrides:
                if where is not None and self.within is not None and self.within(where, o.place):
                    return None if not o.enabled else (o.levels or rule.levels)
        return rule.levels

    within: Any = None  # set by the component: (place, area) -> bool

    def holds(self, c: Cond, unit: Unit, ts: float, sensor: Unit | None) -> bool:
        """Tell whether a condition holds for a unit at time ts (updating its duration timers)."""
        if isinstance(c, Threshold):
            ok = self._threshold(c, unit, ts) is not None
            return self._held(unit, c.key, ok, ts, c.hold)
        if isinstance(c, Group):
            results = [self.holds(p, unit, ts, sensor) for p in c.parts]
            ok = all(results) if c.mode == "all" else any(results)
            return self._held(unit, c.key, ok, ts, c.hold)
        if isinstance(c, Rate):
            samples = unit.rates.get((c.quantity, c.per))
            ok = False
            if samples:
                now_v = samples[-1][1]
                vals = [v for t, v in samples if t >= ts - c.per]
                ok = bool(vals) and ((now_v - min(vals)) >= c.amount if c.rising else (max(vals) - now_v) >= c.amount)
            return self._held(unit, c.key, ok, ts, c.hold)
        if isinstance(c, Absent):
            last = unit.last.get(c.quantity)
            return last is None and unit.last != {} or (last is not None and ts - last[0] >= c.after)
        if isinstance(c, Count) and c.of is not None:
            members = unit.members.setdefault(c.key, set())
            if sensor is not None:
                if self.holds(c.of, sensor, ts, sensor):
                    members.add(sensor.id)
                else:
                    members.discard(sensor.id)
            if c.at_least:
                return len(members) >= c.at_least
            total = len(set().union(*unit.sensors.values())) if unit.sensors else 0
            return total > 0 and len(members) / total >= c.fraction
        return False

    def _threshold(self, c: Threshold, unit: Unit, ts: float) -> float | None:
        """Return the statistic when the comparison holds, else None."""
        target = self.units.get((unit.level, c.place)) if c.place else unit
        if c.place and target is None:
            target = next((u for (lvl, uid), u in self.units.items() if uid == c.place), None)
        if target is None:
            return None
        if c.stat == "value":
            last = target.last.get(c.quantity)
            v = last[1] if last is not None else None
        else:
            roll = target.rolls.get((c.quantity, c.window))
            v = roll.stat(c.stat, ts) if roll is not None else None
        if v is None or (c.above is not None and v < c.above) or (c.below is not None and v > c.below):
            return None
        return v

    @staticmethod
    def _held(unit: Unit, key: int, ok: bool, ts: float, hold: float) -> bool:
        if not ok:
            unit.since.pop(key, None)
            return False
        if hold <= 0:
            return True
        since = unit.since.setdefault(key, ts)
        return ts - since >= hold

    def explain(self, c: Cond, unit: Unit, ts: float) -> list[str]:
        """Describe, in words, the facts that made a condition hold."""
        if isinstance(c, Threshold):
            v = self._threshold(c, unit, ts)
            stat = c.quantity if c.stat == "value" else f"{c.quantity} {c.stat} over {_dur(c.window)}"
            bound = " and ".join(x for x in (f"≥ {c.above:g}" if c.above is not None else "",
                                             f"≤ {c.below:g}" if c.below is not None else "") if x)
            where = f" at {c.place}" if c.place else ""
            held = f" for {_dur(c.hold)}" if c.hold else ""
            return [f"{stat}{where} = {'n/a' if v is None else f'{round(v, 2):g}'} {bound}{held}"]
        if isinstance(c, Group):
            return [f for p in c.parts for f in self.explain(p, unit, ts)]
        if isinstance(c, Rate):
            return [f"{c.quantity} {'rose' if c.rising else 'fell'} by ≥ {c.amount:g} within {_dur(c.per)}"]
        if isinstance(c, Absent):
            return [f"no {c.quantity} data for {_dur(c.after)}"]
        if isinstance(c, Count):
            members = sorted(unit.members.get(c.key, set()))
            return [f"{len(members)} sensors: {', '.join(members[:10])}"]
        return []


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"



ABOVE_COMMUNITY = ("subdistrict", "district", "city")


def partition_problems(rules: list[Rule], partitions: int) -> list[dict[str, Any]]:
    """Return why rules cannot be judged inside one pipeline partition (a community's): none if partitions == 1.

    A partition sees every sensor of its communities and nothing else, so a rule over a subdistrict, a
    district or the city, or a condition reading another place's data, would judge a fraction of its input."""
    if partitions <= 1:
        return []
    problems: list[dict[str, Any]] = []
    fix = f"the node runs the pipeline in {partitions} partitions keyed by community; set partitions=1 to use it"
    for rule in rules:
        if rule.scope in ABOVE_COMMUNITY:
            problems.append({"line": rule.line, "field": f"{rule.id}.scope",
                             "error": f"rule {rule.id!r} has scope {rule.scope}, above community: {fix}"})
        for place in sorted(rule.pinned):
            problems.append({"line": rule.line, "field": f"{rule.id}.place",
                             "error": f"rule {rule.id!r} reads the data of {place} (a condition pinned to another "
                                      f"place), which another partition may hold: {fix}"})
    return problems


def _cond_keys(c: Cond, out: list[int]) -> None:
    out.append(c.key)
    if isinstance(c, Group):
        for p in c.parts:
            _cond_keys(p, out)
    elif isinstance(c, Count) and c.of is not None:
        _cond_keys(c.of, out)


def rules_key(rules: list[Rule]) -> str:
    """Return a fingerprint of the rules and their condition keys (unit timers are keyed by them)."""
    parts = []
    for rule in rules:
        keys: list[int] = []
        for cond in RuleEngine._conds(rule):
            _cond_keys(cond, keys)
        parts.append(f"{rule.id}:{','.join(map(str, keys))}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()
