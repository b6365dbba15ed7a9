"""Exposure and vulnerability of a grid cell, and how a risk score maps to a warning level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# score = hazard × exposure × vulnerability; a red hazard in a median cell scores about 1.2 (red),
# an orange one 0.9 (orange), while the same orange hazard in a sparse, young cell drops to yellow.
THRESHOLDS: tuple[tuple[float, str], ...] = ((0.95, "red"), (0.7, "orange"), (0.45, "yellow"), (0.2, "blue"))


@dataclass(frozen=True)
class Profile:
    """What a cell holds at risk (exposure) and how fragile it is (shares in [0, 1])."""

    population: int = 0
    critical: int = 0
    exposure: float = 1.0
    elderly: float = 0.0
    children: float = 0.0
    old_buildings: float = 0.0
    low_lying: bool = False


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def profile_of(cell: Any, critical: int, median_population: float) -> Profile:
    """Build a cell's profile from its Grid entity attributes (population, elderly, children, …)."""
    if cell is None:
        return Profile(critical=critical)
    pop = _num(cell.value("population"))
    if pop is not None and median_population > 0:
        exposure = 0.6 + 0.4 * min(pop / median_population, 1.5)
    else:
        exposure = 1.0
    exposure += min(0.15, 0.05 * critical)
    share = (lambda n: min(1.0, (_num(cell.value(n)) or 0.0) / pop)) if pop else (lambda n: 0.0)
    old = _num(cell.value("oldBuildings")) or 0.0
    return Profile(population=int(pop or 0), critical=critical, exposure=exposure, elderly=share("elderly"),
                   children=share("children"), old_buildings=old if old <= 1 else old / 100.0,
                   low_lying=bool(cell.value("lowLying", False)))


def vulnerability(p: Profile, category: str) -> tuple[float, dict[str, Any]]:
    """Return the vulnerability multiplier for a hazard category and the parts that made it."""
    v = 1.0 + 0.6 * p.elderly + 0.4 * p.children
    parts: dict[str, Any] = {}
    if p.elderly:
        parts["elderly_share"] = round(p.elderly, 3)
    if p.children:
        parts["children_share"] = round(p.children, 3)
    kind = category.split(".", 1)[0]
    if kind == "flood":
        if p.low_lying:
            v += 0.3
            parts["low_lying"] = True
        v += 0.2 * p.old_buildings
        if p.old_buildings:
            parts["old_buildings_share"] = round(p.old_buildings, 3)
    elif kind in ("air", "weather"):
        v += 0.3 * p.elderly  # respiratory and heat stress weigh on the elderly most
    return v, parts


def level_of_score(score: float) -> str:
    """Map a risk score to none / blue / yellow / orange / red."""
    for bound, level in THRESHOLDS:
        if score >= bound:
            return level
    return "none"
