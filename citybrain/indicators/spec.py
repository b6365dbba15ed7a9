"""Indicator definitions: the YAML file, its checks (errors name line and field) and the safe formula parser."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citybrain.errors import ValidationError
from citybrain.indicators.functions import FUNCTIONS

SHIPPED = Path(__file__).with_name("indicators.yaml")
DIMENSIONS: dict[str, tuple[str, str]] = {
    "coverage": ("内容覆盖", "Content coverage"),
    "mechanism": ("机制建设", "Mechanism building"),
    "capability": ("运行能力", "Operational capability"),
    "results": ("运行成效", "Operational results"),
}
Key = tuple[str | int, ...]


class IndicatorError(ValidationError):
    """An indicator file (or override) that cannot be used; the message names file, line and field."""

    code = "IndicatorError"


@dataclass(frozen=True)
class Call:
    """One data-function call inside a formula, e.g. cases(channel="open311")."""

    name: str
    args: tuple[tuple[str, Any], ...]

    def key(self) -> str:
        """Return a stable text form (used to cache results)."""
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args)})"


@dataclass(frozen=True)
class Indicator:
    """One indicator: what it measures, how it is computed and scored, and the clause it follows."""

    id: str
    zh: str
    en: str
    dimension: str
    formula: str
    tree: ast.Expression
    calls: tuple[Call, ...]
    unit: str
    direction: str  # higher | lower
    target: float
    weight: float
    standard: str
    clause: str
    description: str = ""
    requires: tuple[str, ...] = ()
    line: int = 0


@dataclass
class IndicatorSet:
    """The indicators of one file, in file order."""

    indicators: list[Indicator]
    source: str = str(SHIPPED)
    by_id: dict[str, Indicator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {i.id: i for i in self.indicators}


_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def parse_formula(text: str, where: str) -> tuple[ast.Expression, tuple[Call, ...]]:
    """Parse a formula: numbers, + - * /, parentheses and calls of the named data functions with constant args."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise IndicatorError(f"{where}: formula: {exc.msg} in {text!r}", field="formula") from None
    calls: list[Call] = []

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            check(node.body)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _OPS):
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            check(node.operand)
        elif isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(
                node.value, bool):
            pass
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            calls.append(call_of(node, where))
        else:
            raise IndicatorError(f"{where}: formula: {ast.unparse(node)!r} is not allowed (only numbers, + - * /, "
                                 f"and the data functions {', '.join(sorted(FUNCTIONS))})", field="formula")

    check(tree)
    return tree, tuple(calls)


def call_of(node: ast.Call, where: str) -> Call:
    name = node.func.id  # type: ignore[attr-defined]
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise IndicatorError(f"{where}: formula: unknown data function {name!r} (known: "
                             f"{', '.join(sorted(FUNCTIONS))})", field="formula")
    args: dict[str, Any] = {}
    if len(node.args) > len(fn.params):
        raise IndicatorError(f"{where}: formula: {name}() takes at most {len(fn.params)} arguments", field="formula")
    pairs = list(zip(fn.params, node.args, strict=False)) + [(k.arg or "", k.value) for k in node.keywords]
    for key, value in pairs:
        if key not in fn.params:
            raise IndicatorError(f"{where}: formula: {name}() has no argument {key!r} (it takes "
                                 f"{', '.join(fn.params) or 'none'})", field="formula")
        if not isinstance(value, ast.Constant) or not isinstance(value.value, str | int | float | bool):
            raise IndicatorError(f"{where}: formula: argument {key} of {name}() must be a constant", field="formula")
        args[key] = value.value
    return Call(name, tuple(sorted(args.items())))


def _lines(node: yaml.Node, path: Key, out: dict[Key, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _lines(v, (*path, k.value), out)
            out[(*path, k.value)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


def read_yaml(path: str | Path) -> tuple[Any, dict[Key, int], str]:
    """Parse a YAML file and remember the line of every value; syntax errors name their line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise IndicatorError(f"{p}: cannot read ({exc.strerror})", field="file") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise IndicatorError(f"{p.name}:{mark.line + 1 if mark else 1}: {exc}", field="yaml") from None
    lines: dict[Key, int] = {}
    if node is not None:
        _lines(node, (), lines)
    return data, lines, p.name


def load_indicators(path: str | Path | None = None, weights: str | Path | None = None) -> IndicatorSet:
    """Load and check an indicator file, then apply an optional weight override file ({id: weight})."""
    data, lines, name = read_yaml(path or SHIPPED)
    items = data.get("indicators") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise IndicatorError(f"{name}:1: indicators: expected a list of indicators", field="indicators")
    out: list[Indicator] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        out.append(_indicator(item, ("indicators", i), lines, name, seen))
    result = IndicatorSet(out, str(path or SHIPPED))
    if weights is not None:
        apply_weights(result, weights)
    return result


def _indicator(item: Any, at: Key, lines: dict[Key, int], name: str, seen: set[str]) -> Indicator:
    def where(key: str | None = None) -> str:
        return f"{name}:{lines.get((*at, key) if key else at, lines.get(at, 1))}: indicators[{at[1]}]" + (
            f".{key}" if key else "")

    if not isinstance(item, dict):
        raise IndicatorError(f"{where()}: expected a mapping", field="indicators")

    def get(key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in item:
            if default is ...:
                raise IndicatorError(f"{where()}: {key}: required", field=key)
            return default
        value = item[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise IndicatorError(f"{where(key)}: expected {getattr(kind, '__name__', 'a number')}, got {value!r}",
                                 field=key)
        return value

    ident = get("id", str)
    if ident in seen:
        raise IndicatorError(f"{where('id')}: duplicate id {ident!r}", field="id")
    seen.add(ident)
    names = get("name", dict)
    dim = get("dimension", str)
    if dim not in DIMENSIONS:
        raise IndicatorError(f"{where('dimension')}: {dim!r} is not one of {', '.join(DIMENSIONS)}", field="dimension")
    direction = get("direction", str)
    if direction not in ("higher", "lower"):
        raise IndicatorError(f"{where('direction')}: expected higher or lower, got {direction!r}", field="direction")
    target = float(get("target", (int, float)))
    if target <= 0:
        raise IndicatorError(f"{where('target')}: must be greater than 0", field="target")
    weight = float(get("weight", (int, float)))
    if weight < 0:
        raise IndicatorError(f"{where('weight')}: must not be negative", field="weight")
    std = get("standard", dict, {})
    formula = get("formula", str)
    tree, calls = parse_formula(formula, where("formula"))
    return Indicator(id=ident, zh=str(names.get("zh", ident)), en=str(names.get("en", ident)), dimension=dim,
                     formula=formula, tree=tree, calls=calls, unit=str(get("unit", str, "")), direction=direction,
                     target=target, weight=weight, standard=str(std.get("name", "")),
                     clause=str(std.get("clause", "")), description=str(get("description", str, "")).strip(),
                     requires=tuple(get("requires", list, [])), line=lines.get(at, 0))


def apply_weights(iset: IndicatorSet, path: str | Path) -> None:
    """Replace weights from an override file: a mapping {indicator id: weight} (or under a `weights:` key)."""
    data, lines, name = read_yaml(path)
    prefix: Key = ()
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data, prefix = data["weights"], ("weights",)
    if not isinstance(data, dict):
        raise IndicatorError(f"{name}:1: expected a mapping of indicator id to weight", field="weights")
    for key, value in data.items():
        line = lines.get((*prefix, key), 1)
        if key not in iset.by_id:
            raise IndicatorError(f"{name}:{line}: {key}: unknown indicator", field=str(key))
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise IndicatorError(f"{name}:{line}: {key}: weight must be a number >= 0, got {value!r}", field=str(key))
    iset.indicators = [_reweigh(i, data) for i in iset.indicators]
    iset.by_id = {i.id: i for i in iset.indicators}


def _reweigh(ind: Indicator, weights: dict[str, Any]) -> Indicator:
    from dataclasses import replace

    return replace(ind, weight=float(weights[ind.id])) if ind.id in weights else ind
