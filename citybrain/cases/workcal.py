"""Working calendars: time limits count working hours (per city: hours, weekends, holidays, make-up days)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from citybrain.cases.yamlfile import YamlDoc

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_PERIOD = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
MAX_DAYS = 3660  # a limit longer than ten years is a catalog mistake, not a wait


@dataclass
class Calendar:
    """Working time of one city; `natural` calendars count every hour (24x7 emergencies)."""

    name: str
    tz: timezone = UTC
    periods: list[tuple[int, int]] = field(default_factory=lambda: [(0, 1440)])  # minutes after midnight
    weekends: frozenset[int] = frozenset()
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    natural: bool = False

    def is_workday(self, day: date) -> bool:
        """Tell whether a local date has working hours."""
        if day in self.workdays:
            return True
        return day not in self.holidays and day.weekday() not in self.weekends

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return []
        base = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return [(base + timedelta(minutes=a), base + timedelta(minutes=b)) for a, b in self.periods]

    def add_hours(self, start: datetime, hours: float) -> datetime:
        """Return the moment `hours` working hours after `start`."""
        if self.natural or hours <= 0:
            return start + timedelta(hours=max(hours, 0))
        left = timedelta(hours=hours)
        day = start.astimezone(self.tz).date()
        for _ in range(MAX_DAYS):
            for a, b in self._spans(day):
                a = max(a, start)
                if a >= b:
                    continue
                if b - a >= left:
                    return (a + left).astimezone(UTC)
                left -= b - a
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name}: no working time within {MAX_DAYS} days")

    def hours_between(self, start: datetime, end: datetime) -> float:
        """Return the working hours from start to end (negative when end is earlier)."""
        if end < start:
            return -self.hours_between(end, start)
        if self.natural:
            return (end - start).total_seconds() / 3600
        total = timedelta()
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            for a, b in self._spans(day):
                a, b = max(a, start), min(b, end)
                if b > a:
                    total += b - a
            day += timedelta(days=1)
        return total.total_seconds() / 3600


NATURAL = Calendar("natural", natural=True)


def _day(doc: YamlDoc, path: tuple[str | int, ...]) -> date:
    value = doc.get(path, (date, str))
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise doc.error(path, f"expected a date like 2026-10-01, got {value!r}") from None


def load_calendars(doc: YamlDoc) -> dict[str, Calendar]:
    """Build the calendars of a calendar file ('default' plus one per City URN)."""
    out: dict[str, Calendar] = {}
    for name in doc.get(("calendars",), dict):
        base = ("calendars", name)
        doc.get(base, dict)
        m = _OFFSET.match(str(doc.get((*base, "utc_offset"), str, "+00:00")))
        if m is None:
            raise doc.error((*base, "utc_offset"), "expected an offset like +08:00")
        sign = -1 if m[1] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m[2]), minutes=int(m[3])))
        periods = []
        for i, text in enumerate(doc.get((*base, "hours"), list)):
            p = _PERIOD.match(str(text))
            if p is None:
                raise doc.error((*base, "hours", i), f"expected HH:MM-HH:MM, got {text!r}")
            a, b = int(p[1]) * 60 + int(p[2]), int(p[3]) * 60 + int(p[4])
            if not 0 <= a < b <= 1440:
                raise doc.error((*base, "hours", i), f"{text!r} is not a period within one day")
            periods.append((a, b))
        if not periods:
            raise doc.error((*base, "hours"), "needs at least one working period")
        weekends = set()
        for i, d in enumerate(doc.get((*base, "weekends"), list, [])):
            if str(d).lower()[:3] not in DAYS:
                raise doc.error((*base, "weekends", i), f"unknown weekday {d!r} (mon … sun)")
            weekends.add(DAYS[str(d).lower()[:3]])
        holidays = {_day(doc, (*base, "holidays", i)) for i in range(len(doc.get((*base, "holidays"), list, [])))}
        workdays = {_day(doc, (*base, "workdays", i)) for i in range(len(doc.get((*base, "workdays"), list, [])))}
        out[str(name)] = Calendar(str(name), tz, sorted(periods), frozenset(weekends), frozenset(holidays),
                                  frozenset(workdays))
    if "default" not in out:
        raise doc.error(("calendars",), "needs a 'default' calendar")
    return out
