"""Read and validate a rule file: every problem is reported with its line and field, all at once."""

from __future__ import annotations

import itertools
from collections.abc import Container
from pathlib import Path
from typing import Any

import yaml

from citybrain.clock import parse_duration
from citybrain.errors import ValidationError
from citybrain.rules.spec import (
    DAYS,
    SCOPES,
    STATS,
    Absent,
    Cond,
    Count,
    Group,
    Override,
    Rate,
    Rule,
    Schedule,
    Threshold,
)
from citybrain.signals import LEVELS
from citybrain.yamlscalar import construct

DEFAULT_FILE = Path(__file__).with_name("default.yaml")
_RULE_KEYS = {"id", "name", "category", "subCategory", "quantity", "scope", "levels", "schedule", "overrides",
              "description", "enabled"}


class RuleFileError(ValidationError):
    """A rule file that cannot be used; `problems` lists {line, field, error} for each mistake."""

    def __init__(self, source: str, problems: list[dict[str, Any]]) -> None:
        lines = [f"{source}:{p['line']}: {p['field']}: {p['error']}" for p in problems]
        first = problems[0]
        super().__init__("; ".join(lines), field=first["field"], line=first["line"], problems=problems)
        self.problems = problems


def _plain(node: yaml.Node, path: str, lines: dict[str, int]) -> Any:
    """Turn a composed YAML node into plain data, remembering the line of every path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = str(k.value)
            out[key] = _plain(v, f"{path}.{key}" if path else key, lines)
            lines.setdefault(f"{path}.{key}" if path else key, k.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, f"{path}[{i}]", lines) for i, v in enumerate(node.value)]
    return construct(node)


class _Reader:
    """Walks the plain data, builds the rules and collects problems."""

    def __init__(self, lines: dict[str, int], quantities: Container[str], places: Container[str] | None) -> None:
        self.lines = lines
        self.quantities = quantities
        self.places = places
        self.problems: list[dict[str, Any]] = []
        self.keys = itertools.count(1)

    def fail(self, path: str, error: str) -> None:
        """Record a problem at `path` (the line of the nearest known parent if the field is missing)."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else probe.rsplit("[", 1)[0] if "[" in probe else ""
        self.problems.append({"line": self.lines.get(probe, 1), "field": path, "error": error})

    def number(self, data: dict[str, Any], key: str, path: str) -> float | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{path}.{key}", f"expected a number, got {value!r}")
            return None
        return float(value)

    def duration(self, data: dict[str, Any], key: str, path: str, default: float = 0.0) -> float:
        if key not in data:
            return default
        seconds = parse_duration(data[key])
        if seconds is None:
            self.fail(f"{path}.{key}", f"expected a duration like 30s, 10m, 6h or 2d, got {data[key]!r}")
            return default
        return seconds

    def quantity(self, data: dict[str, Any], path: str, default: str) -> str:
        q = data.get("quantity", default)
        if not isinstance(q, str) or q not in self.quantities:
            self.fail(f"{path}.quantity" if "quantity" in data else path,
                      f"unknown quantity {q!r} (declare it under 'quantities:' if it is new)")
        return str(q)

    def place(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.fail(path, f"expected a place URN, got {value!r}")
            return None
        if self.places is not None and value not in self.places:
            self.fail(path, f"unknown place {value}")
        return value

    def unknown(self, data: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(f"{path}.{key}", f"unknown field (expected one of {', '.join(sorted(allowed))})")

    def cond(self, data: Any, path: str, rule_q: str, scope: str, rule: Rule, in_count: bool = False) -> Cond:
        """Build one condition node."""
        key = next(self.keys)
        if not isinstance(data, dict):
            self.fail(path, "expected a condition (a mapping with above/below, rise/fall, absent, all, any or of)")
            return Group(path, key, "all", [])
        if "all" in data or "any" in data:
            mode = "all" if "all" in data else "any"
            self.unknown(data, {mode, "for"}, path)
            parts = data[mode]
            if not isinstance(parts, list) or not parts:
                self.fail(f"{path}.{mode}", "expected a non-empty list of conditions")
                parts = []
            built = [self.cond(p, f"{path}.{mode}[{i}]", rule_q, scope, rule, in_count) for i, p in enumerate(parts)]
            return Group(path, key, mode, built, self.duration(data, "for", path))
        if "of" in data:
            self.unknown(data, {"of", "at_least", "fraction"}, path)
            if scope == "sensor" or in_count:
                self.fail(f"{path}.of", "counting sensors needs a place scope (grid, community, …), not nested")
            n = int(self.number(data, "at_least", path) or 0) if "at_least" in data else 0
            frac = (self.number(data, "fraction", path) or 0.0) if "fraction" in data else 0.0
            if n <= 0 and not 0 < frac <= 1:
                self.fail(path, "a count needs at_least: N (N ≥ 1) or fraction: 0 < f ≤ 1")
            inner = self.cond(data["of"], f"{path}.of", rule_q, "sensor", rule, True)
            return Count(path, key, inner, n, frac)
        if "absent" in data:
            self.unknown(data, {"absent", "quantity"}, path)
            q = self.quantity(data, path, rule_q)
            rule.quantities.add(q)
            return Absent(path, key, q, self.duration(data, "absent", path, 3600.0))
        if "rise" in data or "fall" in data:
            word = "rise" if "rise" in data else "fall"
            self.unknown(data, {word, "per", "quantity", "for"}, path)
            q = self.quantity(data, path, rule_q)
            rule.quantities.add(q)
            amount = self.number(data, word, path) or 0.0
            return Rate(path, key, q, amount, word == "rise", self.duration(data, "per", path, 3600.0),
                        self.duration(data, "for", path))
        if "above" in data or "below" in data:
            self.unknown(data, {"above", "below", "stat", "window", "for", "quantity", "place"}, path)
            q = self.quantity(data, path, rule_q)
            rule.quantities.add(q)
            stat = data.get("stat", "value")
            if stat not in STATS:
                self.fail(f"{path}.stat", f"unknown statistic {stat!r} (expected one of {', '.join(STATS)})")
            window = self.duration(data, "window", path)
            if stat != "value" and window <= 0:
                self.fail(f"{path}.window", f"stat {stat} needs a window (e.g. window: 1h)")
            if stat == "sum" and scope != "sensor":
                self.fail(f"{path}.stat", "stat sum is per sensor; use scope: sensor or mean/max for a place")
            above = self.number(data, "above", path) if "above" in data else None
            below = self.number(data, "below", path) if "below" in data else None
            pinned = self.place(data["place"], f"{path}.place") if "place" in data else None
            if pinned:
                if scope == "sensor":
                    self.fail(f"{path}.place", "a place-pinned condition needs a place scope")
                rule.pinned.add(pinned)
            return Threshold(path, key, q, str(stat), window, above, below, self.duration(data, "for", path), pinned)
        self.fail(path, "not a condition: expected above/below, rise/fall, absent, all, any, or of with at_least")
        return Group(path, key, "all", [])

    def levels(self, data: Any, path: str, rule_q: str, scope: str, rule: Rule) -> dict[str, Cond]:
        if not isinstance(data, dict) or not data:
            self.fail(path, f"expected a mapping of warning levels ({', '.join(LEVELS)}) to conditions")
            return {}
        out: dict[str, Cond] = {}
        for level, cond in data.items():
            if level not in LEVELS:
                self.fail(f"{path}.{level}", f"unknown warning level (expected {', '.join(LEVELS)})")
                continue
            out[level] = self.cond(cond, f"{path}.{level}", rule_q, scope, rule)
        return out

    def schedule(self, data: Any, path: str) -> Schedule | None:
        if not isinstance(data, dict):
            self.fail(path, "expected a mapping with hours, days and utc_offset")
            return None
        self.unknown(data, {"hours", "days", "utc_offset"}, path)
        sched = Schedule()
        if "hours" in data:
            try:
                a, b = str(data["hours"]).split("-")
                sched.start_min, sched.end_min = (int(x.split(":")[0]) * 60 + int(x.split(":")[1]) for x in (a, b))
            except (ValueError, IndexError):
                self.fail(f"{path}.hours", f"expected HH:MM-HH:MM, got {data['hours']!r}")
        if "days" in data:
            days = data["days"]
            if not isinstance(days, list) or any(d not in DAYS for d in days):
                self.fail(f"{path}.days", f"expected a list of {', '.join(DAYS)}")
            else:
                sched.days = frozenset(DAYS.index(d) for d in days)
        if "utc_offset" in data:
            text = str(data["utc_offset"])
            try:
                sign = -1 if text.startswith("-") else 1
                h, m = text.lstrip("+-").split(":")
                sched.offset_min = sign * (int(h) * 60 + int(m))
            except ValueError:
                self.fail(f"{path}.utc_offset", f"expected +HH:MM, got {text!r}")
        return sched

    def rule(self, data: Any, path: str, seen: set[str]) -> Rule | None:
        if not isinstance(data, dict):
            self.fail(path, "expected a rule (a mapping with id, category, quantity, levels)")
            return None
        self.unknown(data, _RULE_KEYS, path)
        for key in ("id", "category", "quantity", "levels"):
            if key not in data:
                self.fail(f"{path}.{key}", "required field is missing")
        rid = str(data.get("id", ""))
        if rid in seen:
            self.fail(f"{path}.id", f"duplicate rule id {rid!r}")
        seen.add(rid)
        scope = data.get("scope", "sensor")
        if scope not in SCOPES:
            self.fail(f"{path}.scope", f"unknown scope {scope!r} (expected one of {', '.join(SCOPES)})")
            scope = "sensor"
        q = self.quantity(data, path, str(data.get("quantity", ""))) if "quantity" in data else ""
        rule = Rule(id=rid, name=str(data.get("name", rid)), category=str(data.get("category", "")), quantity=q,
                    scope=scope, levels={}, sub_category=str(data.get("subCategory", "")),
                    description=str(data.get("description", "")), line=self.lines.get(path, 0))
        rule.quantities.add(q)
        rule.levels = self.levels(data.get("levels"), f"{path}.levels", q, scope, rule)
        if "schedule" in data:
            rule.schedule = self.schedule(data["schedule"], f"{path}.schedule")
        overrides = data.get("overrides", [])
        if not isinstance(overrides, list):
            self.fail(f"{path}.overrides", "expected a list of {place, levels | enabled}")
            overrides = []
        for i, o in enumerate(overrides):
            opath = f"{path}.overrides[{i}]"
            if not isinstance(o, dict) or "place" not in o:
                self.fail(opath, "an override needs a place")
                continue
            self.unknown(o, {"place", "levels", "enabled"}, opath)
            place = self.place(o["place"], f"{opath}.place") or ""
            levels = self.levels(o["levels"], f"{opath}.levels", q, scope, rule) if "levels" in o else None
            rule.overrides.append(Override(place, levels, bool(o.get("enabled", True))))
        return rule if data.get("enabled", True) else None


def parse_rules(text: str, source: str = "rules.yaml", quantities: Container[str] = (),
                places: Container[str] | None = None) -> list[Rule]:
    """Parse rule-file text; raise RuleFileError listing every problem with its line and field."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
        data = _plain(root, "", lines) if root is not None else {}  # scalars can fail too (!!int abc)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise RuleFileError(source, [{"line": line, "field": "(file)", "error": f"not valid YAML: {exc}"}]) from None
    if not isinstance(data, dict):
        raise RuleFileError(source, [{"line": 1, "field": "(file)", "error": "expected a mapping with 'rules:'"}])
    declared = data.get("quantities") or {}
    known = set(declared) if isinstance(declared, dict | list) else set()
    reader = _Reader(lines, _Either(known, quantities), places)
    reader.unknown(data, {"version", "quantities", "rules"}, "")
    rules_data = data.get("rules")
    if not isinstance(rules_data, list):
        reader.fail("rules", "expected a list of rules")
        rules_data = []
    seen: set[str] = set()
    rules = [r for i, d in enumerate(rules_data) if (r := reader.rule(d, f"rules[{i}]", seen)) is not None]
    if reader.problems:
        raise RuleFileError(source, reader.problems)
    return rules


def load_rules(path: str | Path | None = None, quantities: Container[str] = (),
               places: Container[str] | None = None) -> list[Rule]:
    """Read and validate a rule file (the shipped default.yaml when path is None)."""
    file = Path(path) if path else DEFAULT_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(str(file), [{"line": 0, "field": "(file)", "error": f"cannot read: {exc}"}]) from None
    return parse_rules(text, file.name, quantities, places)


class _Either:
    """Membership in either of two containers."""

    def __init__(self, a: Container[str], b: Container[str]) -> None:
        self.a, self.b = a, b

    def __contains__(self, item: object) -> bool:
        return item in self.a or item in self.b
