"""What a rule file says, once validated: rules, their warning levels and their conditions."""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPES: tuple[str, ...] = ("sensor", "grid", "community", "subdistrict", "district", "city")
SCOPE_TYPE: dict[str, str] = {"grid": "Grid", "community": "Community", "subdistrict": "Subdistrict",
                              "district": "District", "city": "City"}
STATS: tuple[str, ...] = ("value", "mean", "max", "min", "sum", "count")
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(eq=False)
class Cond:
    """A condition node; `key` identifies it in per-unit state, `path` in messages."""

    path: str
    key: int = 0


@dataclass(eq=False)
class Threshold(Cond):
    """A statistic of a quantity compared with a bound, optionally held for a duration."""

    quantity: str = ""
    stat: str = "value"
    window: float = 0.0
    above: float | None = None
    below: float | None = None
    hold: float = 0.0  # "for": seconds the comparison must keep holding
    place: str | None = None  # pinned to another place's aggregate


@dataclass(eq=False)
class Rate(Cond):
    """A rise or fall of a quantity of at least `amount` within `per` seconds."""

    quantity: str = ""
    amount: float = 0.0
    rising: bool = True
    per: float = 3600.0
    hold: float = 0.0


@dataclass(eq=False)
class Absent(Cond):
    """No observation of a quantity for `after` seconds (by the runtime clock)."""

    quantity: str = ""
    after: float = 0.0


@dataclass(eq=False)
class Group(Cond):
    """All (AND) or any (OR) of the parts."""

    mode: str = "all"
    parts: list[Cond] = field(default_factory=list)
    hold: float = 0.0


@dataclass(eq=False)
class Count(Cond):
    """At least n (or a fraction) of the sensors in a place satisfy `of`."""

    of: Cond | None = None
    at_least: int = 0
    fraction: float = 0.0


@dataclass
class Schedule:
    """When a rule is active: hours of the day and days of the week, in a fixed UTC offset."""

    start_min: int = 0
    end_min: int = 24 * 60
    days: frozenset[int] = frozenset(range(7))
    offset_min: int = 480  # Beijing time

    def active(self, ts: float) -> bool:
        """Tell whether the schedule covers epoch second `ts`."""
        local = ts + self.offset_min * 60
        minute = int(local // 60) % 1440
        day = (int(local // 86400) + 3) % 7  # 1970-01-01 was a Thursday
        if day not in self.days:
            return False
        if self.start_min <= self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min


@dataclass
class Override:
    """Different levels (or disabled) for the places inside `place`."""

    place: str
    levels: dict[str, Cond] | None = None
    enabled: bool = True


@dataclass
class Rule:
    """One rule of the file: what it watches, at which scope, and the condition of each level."""

    id: str
    name: str
    category: str
    quantity: str
    scope: str
    levels: dict[str, Cond]
    sub_category: str = ""
    description: str = ""
    schedule: Schedule | None = None
    overrides: list[Override] = field(default_factory=list)
    line: int = 0
    quantities: set[str] = field(default_factory=set)  # every quantity it reads
    pinned: set[str] = field(default_factory=set)  # places its conditions are pinned to


