"""Compute indicators for a period and an area, score them against their targets, trend and compare."""

from __future__ import annotations

import ast
import importlib.util
from typing import TYPE_CHECKING, Any

from citybrain.indicators.functions import FUNCTIONS
from citybrain.indicators.records import NoData, Records, Scope, period, previous, scope_of
from citybrain.indicators.spec import DIMENSIONS, Indicator, IndicatorSet
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


def arithmetic(node: ast.AST, values: dict[str, float]) -> float:
    """Evaluate a checked formula tree; call results come from `values` (by call text)."""
    if isinstance(node, ast.Expression):
        return arithmetic(node.body, values)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp):
        v = arithmetic(node.operand, values)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Call):
        from citybrain.indicators.spec import call_of

        return values[call_of(node, "").key()]
    assert isinstance(node, ast.BinOp)
    a, b = arithmetic(node.left, values), arithmetic(node.right, values)
    if isinstance(node.op, ast.Add):
        return a + b
    if isinstance(node.op, ast.Sub):
        return a - b
    if isinstance(node.op, ast.Mult):
        return a * b
    if b == 0:
        raise NoData("a denominator is zero (nothing to divide by in this period and area)")
    return a / b


def score_of(ind: Indicator, value: float | None) -> float | None:
    """Normalise a value against the target, direction-aware, clipped to [0, 1] (None: no data)."""
    if value is None:
        return None
    if ind.direction == "higher":
        return max(0.0, min(1.0, value / ind.target))
    return 1.0 if value <= ind.target else max(0.0, min(1.0, ind.target / value))


def missing(rt: CityBrain, ind: Indicator) -> str | None:
    """Return why an indicator's required component is absent, or None."""
    for name in ind.requires:
        if importlib.util.find_spec(name) is None or name not in rt.components:
            return f"no data: {name} is not running on this node"
    return None


async def compute_one(rec: Records, scope: Scope, ind: Indicator, cache: dict[str, float | str]) -> dict[str, Any]:
    """Compute one indicator in a scope: value, score, and the reason when there is no data."""
    reason = missing(rec.rt, ind)
    values: dict[str, float] = {}
    inputs: dict[str, float | None] = {}
    if reason is None:
        for call in ind.calls:
            key = call.key()
            if key not in cache:
                try:
                    cache[key] = await FUNCTIONS[call.name].impl(rec, scope, **dict(call.args))
                except NoData as exc:
                    cache[key] = f"no data: {exc}"
            got = cache[key]
            if isinstance(got, str):
                reason = reason or got
                inputs[key] = None
            else:
                values[key] = inputs[key] = got
    value: float | None = None
    if reason is None:
        try:
            value = arithmetic(ind.tree, values)
        except NoData as exc:
            reason = f"no data: {exc}"
    score = score_of(ind, value)
    return {"id": ind.id, "name": {"zh": ind.zh, "en": ind.en}, "dimension": ind.dimension, "unit": ind.unit,
            "value": None if value is None else round(value, 4), "score": None if score is None else round(score, 4),
            "target": ind.target, "direction": ind.direction, "weight": ind.weight, "no_data": reason,
            "standard": ind.standard, "clause": ind.clause, "formula": ind.formula, "inputs": inputs}


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Weighted total (0-100) and per-dimension scores over the indicators that have data."""
    def weighted(items: list[dict[str, Any]]) -> float | None:
        live = [r for r in items if r["score"] is not None and r["weight"] > 0]
        w = sum(r["weight"] for r in live)
        return round(100 * sum(r["score"] * r["weight"] for r in live) / w, 2) if w else None

    all_w = sum(r["weight"] for r in rows)
    have_w = sum(r["weight"] for r in rows if r["score"] is not None)
    dims = {d: {"name": {"zh": zh, "en": en}, "score": weighted([r for r in rows if r["dimension"] == d]),
                "weight": sum(r["weight"] for r in rows if r["dimension"] == d)}
            for d, (zh, en) in DIMENSIONS.items()}
    return {"score": weighted(rows), "dimensions": dims,
            "coverage": round(have_w / all_w, 4) if all_w else 0.0,
            "no_data": sum(1 for r in rows if r["score"] is None)}


async def evaluate(rt: CityBrain, iset: IndicatorSet, start: str, end: str, area: str | None = None,
                   trend: int = 3, compare: bool = True, only: str | None = None) -> dict[str, Any]:
    """Compute every indicator for a period and area, the previous `trend` periods and the sub-areas."""
    start, end = period(start, end)
    first = previous(start, end, trend)[0] if trend else start
    rec = Records(rt, first, end)
    await rec.load()
    inds = [i for i in iset.indicators if only is None or i.id == only]
    scope = scope_of(rt, start, end, area)

    async def run(sc: Scope) -> dict[str, Any]:
        cache: dict[str, float | str] = {}
        rows = [await compute_one(rec, sc, ind, cache) for ind in inds]
        return {"from": sc.start, "to": sc.end, "area": sc.area, "indicators": rows, **totals(rows)}

    current = await run(scope)
    history = []
    for n in range(trend, 0, -1):
        a, b = previous(start, end, n)
        history.append(await run(scope_of(rt, a, b, scope.area)))
    prior = history[-1] if history else None
    for row in current["indicators"]:
        before = next((r for r in prior["indicators"] if r["id"] == row["id"]), None) if prior else None
        row["previous"] = before["value"] if before else None
        row["change"] = (round(row["value"] - before["value"], 4) if before and before["value"] is not None
                         and row["value"] is not None else None)
        row["trend"] = [next(r["value"] for r in h["indicators"] if r["id"] == row["id"]) for h in history] + [
            row["value"]]
    areas = []
    places = rt.ports.find(Ports.places)
    if compare and places is not None and scope.area is not None:
        for child in sorted(places.children.get(scope.area, [])):
            if places.places[child].type == "Grid":
                continue
            sub = await run(scope_of(rt, start, end, child))
            name = places.places[child].value("nameZh") or places.places[child].value("name") or child
            areas.append({"area": child, "name": name, "score": sub["score"],
                          "values": {r["id"]: r["value"] for r in sub["indicators"]}})
    return {**current, "periods": [{"from": h["from"], "to": h["to"], "score": h["score"]} for h in history]
            + [{"from": current["from"], "to": current["to"], "score": current["score"]}],
            "previous": prior and {"from": prior["from"], "to": prior["to"], "score": prior["score"]},
            "areas": areas, "source": iset.source, "generated_at": rt.now()}
