"""What an emergency plan (应急预案) file says, once validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ObservationCond:
    """Sensors of a quantity in the plan's area: at least n (or a fraction) are above/below a bound."""

    quantity: str
    stat: str = "value"  # value (latest) or mean (over window)
    window: float = 3600.0
    above: float | None = None
    below: float | None = None
    at_least: int = 1
    fraction: float | None = None
    rising: bool = False  # the network mean of the latest values rose since the previous observation time


@dataclass
class AlertCond:
    """At least n open alerts of a category (glob) at or above a warning level."""

    category: str = "*"
    level: str = "blue"
    at_least: int = 1


@dataclass
class RiskCond:
    """At least n places of a type (grid or community) at or above a risk level."""

    level: str = "orange"
    at_least: int = 1
    type: str = "community"


@dataclass
class Condition:
    """A leaf (observation, alert or risk) or a group (any/all of parts), optionally held for `hold` s."""

    path: str
    line: int
    mode: str = "leaf"  # leaf, any, all
    leaf: ObservationCond | AlertCond | RiskCond | None = None
    parts: list[Condition] = field(default_factory=list)
    hold: float = 0.0


@dataclass
class Trigger:
    """A condition that, when it holds, proposes the plan at a level."""

    id: str
    level: str
    when: Condition
    line: int = 0


@dataclass
class Task:
    """A task for a department (or every community of the area, or those with low-lying cells)."""

    id: str
    title: str
    within: float  # seconds to complete
    department: str | None = None
    communities: str | None = None  # "all" or "low-lying"
    acknowledge: float = 900.0  # seconds to acknowledge
    category: str | None = None  # case category (coordinated disposal) for department tasks
    min_level: str = "IV"  # only issued at this level or above
    line: int = 0


@dataclass
class Preposition:
    """Resources to move before they are needed: so many units of a capability to communities."""

    capability: str
    units: int
    to: str = "low-lying"  # low-lying, all, or a place URN
    line: int = 0


@dataclass
class Plan:
    """One emergency plan."""

    id: str
    name: str
    area: str | None
    triggers: list[Trigger]
    tasks: list[Task]
    manual: bool = True
    confirm_roles: tuple[str, ...] = ("command_centre", "city_operator", "admin")
    auto_confirm: bool = False
    rules: list[dict[str, Any]] = field(default_factory=list)  # rule-file rules replacing same-id rules
    detector_threshold: float | None = None
    reporting: float | None = None  # seconds between community reports while active
    resources: list[Preposition] = field(default_factory=list)
    end: Condition | None = None
    max_duration: float | None = None
    recovery: float = 6 * 3600.0
    scenario: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def departments(self) -> list[str]:
        """Return the departments that receive tasks."""
        return sorted({t.department for t in self.tasks if t.department})

    def public(self) -> dict[str, Any]:
        """Return a summary for the API."""
        return {"id": self.id, "name": self.name, "area": self.area, "manual": self.manual,
                "triggers": [{"id": t.id, "level": t.level, "line": t.line} for t in self.triggers],
                "departments": self.departments(), "tasks": len(self.tasks), "auto_confirm": self.auto_confirm,
                "reporting_seconds": self.reporting, "overrides": [r.get("id") for r in self.rules],
                "resources": [{"capability": p.capability, "units": p.units, "to": p.to} for p in self.resources],
                "scenario": self.scenario, "source": self.source}
