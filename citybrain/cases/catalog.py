"""The case catalog: categories (部件/事件) with time limits, alert mapping, deadline and duplicate policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citybrain.cases.routing import Router, load_router
from citybrain.cases.workcal import NATURAL, Calendar, load_calendars
from citybrain.cases.yamlfile import YamlDoc, load_yaml
from citybrain.errors import NotFound

HERE = Path(__file__).parent
_CODE = re.compile(r"^[CE]\d{4}$")


@dataclass(frozen=True)
class Category:
    """One case category: what it is, when to file it, how long departments have, when it is done."""

    code: str
    kind: str  # component (部件) | event (事件)
    zh: str
    en: str
    group_zh: str
    group_en: str
    limit_hours: float
    clock: str = "working"  # working | natural
    filing: tuple[str, ...] = ()
    closing: tuple[str, ...] = ()
    open311: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the category as plain data."""
        return {"code": self.code, "kind": self.kind, "zh": self.zh, "en": self.en, "group": {
            "zh": self.group_zh, "en": self.group_en}, "limit_hours": self.limit_hours, "clock": self.clock,
            "filing": list(self.filing), "closing": list(self.closing)}


@dataclass(frozen=True)
class MatterTask:
    """One department task of a one-matter template."""

    department: str
    zh: str
    en: str
    hours: float


@dataclass(frozen=True)
class Matter:
    """A one-matter service (一件事) template."""

    code: str
    zh: str
    en: str
    tasks: tuple[MatterTask, ...]


@dataclass
class Catalog:
    """Everything the case desk reads from its editable files."""

    categories: dict[str, Category]
    alerts: dict[str, str]
    default_category: str
    policy: dict[str, float]
    duplicates: dict[str, float]
    auto_file: frozenset[str]
    calendars: dict[str, Calendar]
    router: Router
    matters: dict[str, Matter] = field(default_factory=dict)

    def category(self, code: str) -> Category:
        """Return a category or raise NotFound naming the field."""
        try:
            return self.categories[code]
        except KeyError:
            raise NotFound(f"unknown case category {code!r}", field="category") from None

    def for_alert(self, alert_category: str) -> str:
        """Map a risk-engine alert category (air.pollution …) onto a case category."""
        if alert_category in self.alerts:
            return self.alerts[alert_category]
        parts = alert_category.split(".")
        for n in range(len(parts) - 1, 0, -1):
            code = self.alerts.get(".".join(parts[:n]) + ".*")
            if code:
                return code
        return self.alerts.get("*", self.default_category)

    def calendar(self, category: Category, city: str | None) -> Calendar:
        """Return the clock a category's limits run on in a city."""
        if category.clock == "natural":
            return NATURAL
        return self.calendars.get(city or "", self.calendars["default"])


def _categories(doc: YamlDoc) -> dict[str, Category]:
    groups = doc.get(("groups",), dict)
    out: dict[str, Category] = {}
    for i in range(len(doc.get(("categories",), list))):
        base: tuple[str | int, ...] = ("categories", i)
        doc.get(base, dict)
        code = doc.get((*base, "code"), str)
        if not _CODE.match(code):
            raise doc.error((*base, "code"), f"expected C or E and four digits, got {code!r}")
        if code in out:
            raise doc.error((*base, "code"), f"duplicate code {code}")
        kind = doc.get((*base, "kind"), str)
        if kind not in ("component", "event") or (kind == "component") != code.startswith("C"):
            raise doc.error((*base, "kind"), "component codes start with C, event codes with E")
        group = groups.get(code[:3])
        if not isinstance(group, dict):
            raise doc.error((*base, "code"), f"group {code[:3]} is not defined under groups")
        limit = doc.get((*base, "limit_hours"), (int, float))
        if limit <= 0:
            raise doc.error((*base, "limit_hours"), "must be a positive number of hours")
        clock = doc.get((*base, "clock"), str, "working")
        if clock not in ("working", "natural"):
            raise doc.error((*base, "clock"), "expected working or natural")
        out[code] = Category(
            code, kind, doc.get((*base, "zh"), str), doc.get((*base, "en"), str), str(group.get("zh", "")),
            str(group.get("en", "")), float(limit), clock, tuple(map(str, doc.get((*base, "filing"), list, []))),
            tuple(map(str, doc.get((*base, "closing"), list, []))), bool(doc.get((*base, "open311"), bool, True)))
    return out


def _matters(doc: YamlDoc) -> dict[str, Matter]:
    out: dict[str, Matter] = {}
    for i in range(len(doc.get(("matters",), list))):
        base: tuple[str | int, ...] = ("matters", i)
        tasks = []
        for j in range(len(doc.get((*base, "tasks"), list))):
            t = (*base, "tasks", j)
            hours = doc.get((*t, "hours"), (int, float))
            if hours <= 0:
                raise doc.error((*t, "hours"), "must be positive")
            tasks.append(MatterTask(doc.get((*t, "department"), str), doc.get((*t, "zh"), str),
                                    doc.get((*t, "en"), str), float(hours)))
        if not tasks:
            raise doc.error((*base, "tasks"), "needs at least one task")
        code = doc.get((*base, "code"), str)
        out[code] = Matter(code, doc.get((*base, "zh"), str), doc.get((*base, "en"), str), tuple(tasks))
    return out


def load_catalog(catalog: str | Path | None = None, calendar: str | Path | None = None,
                 routing: str | Path | None = None, matters: str | Path | None = None) -> Catalog:
    """Load and cross-check the four files (defaults: the ones shipped with the package)."""
    doc = load_yaml(catalog or HERE / "catalog.yaml")
    cats = _categories(doc)
    alerts = {str(k): str(v) for k, v in doc.get(("alerts",), dict, {}).items()}
    for k, v in alerts.items():
        if v not in cats:
            raise doc.error(("alerts", k), f"unknown category {v!r}")
    default = doc.get(("default_category",), str)
    if default not in cats:
        raise doc.error(("default_category",), f"unknown category {default!r}")
    policy = {k: float(doc.get(("deadlines", k), (int, float))) for k in (
        "dispatch_hours", "warn_fraction", "head_after_hours", "command_after_hours", "check_seconds")}
    dup = {k: float(doc.get(("duplicates", k), (int, float))) for k in ("radius_m", "window_hours", "text_threshold")}
    auto = frozenset(map(str, doc.get(("auto_file_channels",), list, [])))
    cal_doc = load_yaml(calendar or HERE / "calendar.yaml")
    router = load_router(load_yaml(routing or HERE / "routing.yaml"), set(cats))
    mdoc = load_yaml(matters or HERE / "matters.yaml")
    found = _matters(mdoc)
    for i, m in enumerate(found.values()):
        for j, t in enumerate(m.tasks):
            if t.department not in router.departments:
                raise mdoc.error(("matters", i, "tasks", j, "department"), f"unknown department {t.department!r}")
    return Catalog(cats, alerts, default, policy, dup, auto, load_calendars(cal_doc), router, found)
