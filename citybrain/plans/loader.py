"""Read and validate plan files: every problem is reported with its line and field, all at once."""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Any

import yaml

from citybrain.clock import parse_duration
from citybrain.errors import ValidationError
from citybrain.plans.spec import (
    AlertCond,
    Condition,
    ObservationCond,
    Plan,
    Preposition,
    RiskCond,
    Task,
    Trigger,
)
from citybrain.signals import LEVELS as COLOURS
from citybrain.yamlscalar import construct

LIBRARY = Path(__file__).with_name("library")
LEVELS = ("IV", "III", "II", "I")
_TOP = {"plan", "name", "area", "triggers", "manual", "confirm", "tasks", "overrides", "reporting", "resources",
        "end", "recovery", "scenario", "description", "version"}


class PlanFileError(ValidationError):
    """A plan file that cannot be used; `problems` lists {line, field, error} for each mistake."""

    def __init__(self, source: str, problems: list[dict[str, Any]]) -> None:
        text = "; ".join(f"{source}:{p['line']}: {p['field']}: {p['error']}" for p in problems)
        super().__init__(text, field=problems[0]["field"], line=problems[0]["line"], problems=problems)
        self.problems = problems


def known_departments() -> set[str]:
    """Return the department keys a plan may name: the demo city's and the case routing file's."""
    from citybrain.demo.catalog import ORGANISATIONS

    names = set(ORGANISATIONS)
    try:
        routing = yaml.safe_load((Path(__file__).parents[1] / "cases" / "routing.yaml").read_text("utf-8"))
        names |= set((routing or {}).get("departments", {}))
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return names


def _quantities() -> set[str]:
    from citybrain.model.types import known_quantities

    return known_quantities()


def _plain(node: yaml.Node, path: str, lines: dict[str, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            sub = f"{path}.{k.value}" if path else str(k.value)
            out[str(k.value)] = _plain(v, sub, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, f"{path}[{i}]", lines) for i, v in enumerate(node.value)]
    return construct(node)


class _Reader:
    def __init__(self, lines: dict[str, int], departments: Container[str], quantities: Container[str]) -> None:
        self.lines, self.departments, self.quantities = lines, departments, quantities
        self.problems: list[dict[str, Any]] = []

    def line(self, path: str) -> int:
        while path and path not in self.lines:
            path = path.rsplit(".", 1)[0] if "." in path else ""
        return self.lines.get(path, 1)

    def fail(self, path: str, error: str) -> None:
        self.problems.append({"line": self.line(path), "field": path, "error": error})

    def keys(self, data: dict[str, Any], allowed: set[str], path: str) -> None:
        for k in data:
            if k not in allowed:
                self.fail(f"{path}.{k}" if path else k, f"unknown field; expected one of {', '.join(sorted(allowed))}")

    def mapping(self, data: Any, path: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail(path, "expected a mapping")
            return {}
        return data

    def duration(self, value: Any, path: str, default: float | None = None) -> float | None:
        if value is None:
            return default
        got = parse_duration(value)
        if got is None:
            self.fail(path, f"{value!r} is not a duration such as 30m, 6h or 2d")
        return got

    def number(self, value: Any, path: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"{value!r} is not a number")
            return None
        return float(value)

    def count(self, value: Any, path: str, default: int = 1) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(path, f"{value!r} is not a whole number of at least 1")
            return default
        return value

    def level(self, value: Any, path: str) -> str:
        text = str(value).strip().upper() if value is not None else ""
        if text not in LEVELS:
            self.fail(path, f"{value!r} is not an emergency level (IV, III, II, I)")
            return "IV"
        return text

    def condition(self, data: Any, path: str) -> Condition:
        data = self.mapping(data, path)
        cond = Condition(path, self.line(path), hold=self.duration(data.get("for"), f"{path}.for", 0.0) or 0.0)
        groups = [k for k in ("any", "all") if k in data]
        leaves = [k for k in ("observation", "alert", "risk") if k in data]
        self.keys(data, {"any", "all", "observation", "alert", "risk", "for"}, path)
        if len(groups) + len(leaves) != 1:
            self.fail(path, "give exactly one of observation, alert, risk, any, all")
            return cond
        if groups:
            cond.mode = groups[0]
            parts = data[cond.mode]
            if not isinstance(parts, list) or not parts:
                self.fail(f"{path}.{cond.mode}", "expected a non-empty list of conditions")
                return cond
            cond.parts = [self.condition(p, f"{path}.{cond.mode}[{i}]") for i, p in enumerate(parts)]
            return cond
        kind = leaves[0]
        sub = f"{path}.{kind}"
        body = self.mapping(data[kind], sub)
        if kind == "observation":
            cond.leaf = self.observation(body, sub)
        elif kind == "alert":
            self.keys(body, {"category", "level", "at_least"}, sub)
            level = str(body.get("level", "blue"))
            if level not in COLOURS:
                self.fail(f"{sub}.level", f"{level!r} is not a warning level ({', '.join(COLOURS)})")
            cond.leaf = AlertCond(str(body.get("category", "*")), level, self.count(body.get("at_least"), sub))
        else:
            self.keys(body, {"level", "at_least", "type"}, sub)
            level = str(body.get("level", "orange"))
            if level not in COLOURS:
                self.fail(f"{sub}.level", f"{level!r} is not a risk level ({', '.join(COLOURS)})")
            kind_of = str(body.get("type", "community"))
            if kind_of not in ("grid", "community"):
                self.fail(f"{sub}.type", "expected grid or community")
            cond.leaf = RiskCond(level, self.count(body.get("at_least"), f"{sub}.at_least"), kind_of)
        return cond

    def observation(self, body: dict[str, Any], path: str) -> ObservationCond:
        self.keys(body, {"quantity", "stat", "window", "above", "below", "at_least", "fraction", "rising"}, path)
        q = body.get("quantity")
        if not isinstance(q, str) or q not in self.quantities:
            self.fail(f"{path}.quantity", f"{q!r} is not a known quantity")
        stat = body.get("stat", "value")
        if stat not in ("value", "mean"):
            self.fail(f"{path}.stat", f"{stat!r}: expected value or mean")
        above, below = self.number(body.get("above"), f"{path}.above"), self.number(body.get("below"), f"{path}.below")
        if (above is None) == (below is None):
            self.fail(path, "give exactly one of above, below")
        frac = self.number(body.get("fraction"), f"{path}.fraction")
        if frac is not None and not 0 < frac <= 1:
            self.fail(f"{path}.fraction", "expected a fraction in (0, 1]")
        return ObservationCond(str(q), str(stat), self.duration(body.get("window"), f"{path}.window", 3600.0) or 3600.0,
                               above, below, self.count(body.get("at_least"), f"{path}.at_least"), frac,
                               bool(body.get("rising", False)))

    def task(self, data: Any, path: str, seen: set[str]) -> Task | None:
        data = self.mapping(data, path)
        self.keys(data, {"id", "task", "department", "communities", "within", "acknowledge", "category",
                         "min_level"}, path)
        tid = str(data.get("id", ""))
        if not tid or tid in seen:
            self.fail(f"{path}.id", "missing" if not tid else f"duplicate task id {tid!r}")
        seen.add(tid)
        dept, coms = data.get("department"), data.get("communities")
        if (dept is None) == (coms is None):
            self.fail(path, "give exactly one of department, communities")
        if dept is not None and str(dept) not in self.departments:
            self.fail(f"{path}.department", f"unknown department {dept!r}")
        if coms is not None and coms not in ("all", "low-lying"):
            self.fail(f"{path}.communities", "expected all or low-lying")
        if not data.get("task"):
            self.fail(f"{path}.task", "missing: say what to do")
        within = self.duration(data.get("within"), f"{path}.within")
        if within is None and "within" not in data:
            self.fail(f"{path}.within", "missing: the time limit, e.g. 1h")
        return Task(tid, str(data.get("task", "")), within or 3600.0, str(dept) if dept is not None else None,
                    str(coms) if coms is not None else None,
                    self.duration(data.get("acknowledge"), f"{path}.acknowledge", 900.0) or 900.0,
                    data.get("category"), self.level(data.get("min_level", "IV"), f"{path}.min_level"),
                    self.line(path))


def parse_plan(text: str, source: str = "plan.yaml", departments: Container[str] | None = None) -> Plan:
    """Parse plan-file text; raise PlanFileError listing every problem with its line and field."""
    from citybrain.plans.build import build_plan

    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
        # constructing scalars can fail too (an unknown or mistyped tag such as !!value or !!int "x")
        data = _plain(root, "", lines) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanFileError(source, [{"line": mark.line + 1 if mark else 1, "field": "(file)",
                                      "error": f"not valid YAML: {exc}"}]) from None
    reader = _Reader(lines, known_departments() if departments is None else departments, _quantities())
    if not isinstance(data, dict):
        raise PlanFileError(source, [{"line": 1, "field": "(file)", "error": "expected a mapping with plan:"}])
    reader.keys(data, _TOP, "")
    plan = build_plan(reader, data, source)
    if reader.problems:
        raise PlanFileError(source, reader.problems)
    return plan


def load_plan(path: str | Path, departments: Container[str] | None = None) -> Plan:
    """Read a plan file by path, or a shipped plan by name (rainstorm, smog)."""
    file = Path(path)
    if not file.exists() and (LIBRARY / f"{path}.yaml").exists():
        file = LIBRARY / f"{path}.yaml"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(str(path), [{"line": 0, "field": "(file)", "error": f"cannot read: {exc}"}]) from None
    return parse_plan(text, file.name, departments)


def library() -> list[str]:
    """Return the names of the shipped plans."""
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


__all__ = ["PlanFileError", "Preposition", "Trigger", "library", "load_plan", "parse_plan", "known_departments"]
