"""Routing rules: (category x place) -> lead department plus assisting departments, or the command centre."""

from __future__ import annotations

from dataclasses import dataclass

from citybrain.cases.yamlfile import YamlDoc
from citybrain.model.places import PlaceIndex


@dataclass(frozen=True)
class Department:
    """A department that handles tasks (its handlers act as dept:<id>:<name>, its head as head:<id>:<name>)."""

    id: str
    zh: str
    en: str


@dataclass(frozen=True)
class Rule:
    """One routing rule, as written on `line` of the routing file."""

    categories: tuple[str, ...]
    place: str
    lead: str
    assist: tuple[str, ...]
    line: int

    def category_score(self, code: str) -> int:
        """How specifically this rule names `code` (-1: not at all)."""
        best = -1
        for pattern in self.categories:
            if pattern == code:
                best = max(best, 100)
            elif pattern == "*":
                best = max(best, 0)
            elif pattern.endswith("*") and code.startswith(pattern[:-1]):
                best = max(best, len(pattern))
        return best


@dataclass(frozen=True)
class Route:
    """Where a case goes: lead and assisting departments, and the rule that decided it."""

    lead: str
    assist: tuple[str, ...]
    rule_line: int


class Router:
    """Routing rules of one city."""

    def __init__(self, command_centre: str, departments: dict[str, Department], rules: list[Rule]) -> None:
        self.command_centre = command_centre
        self.departments = departments
        self.rules = rules

    def route(self, category: str, place: str | None, places: PlaceIndex | None) -> Route | None:
        """Return the route of the most specific matching rule, or None (command centre queue)."""
        chain = [place, *(places.ancestors(place) if places is not None else [])] if place else []
        best: tuple[int, int, int] | None = None
        chosen: Rule | None = None
        for order, rule in enumerate(self.rules):
            cscore = rule.category_score(category)
            if cscore < 0:
                continue
            if rule.place == "*":
                pscore = 0
            elif rule.place in chain:
                pscore = 100 - chain.index(rule.place)
            else:
                continue
            key = (pscore, cscore, -order)
            if best is None or key > best:
                best, chosen = key, rule
        if chosen is None:
            return None
        return Route(chosen.lead, chosen.assist, chosen.line)


def load_router(doc: YamlDoc, categories: set[str]) -> Router:
    """Build the router from a routing file, checking departments and category codes."""
    centre = doc.get(("command_centre",), str)
    departments: dict[str, Department] = {}
    for key in doc.get(("departments",), dict):
        d = ("departments", key)
        departments[str(key)] = Department(str(key), doc.get((*d, "zh"), str), doc.get((*d, "en"), str))
    rules: list[Rule] = []
    for i in range(len(doc.get(("rules",), list, []))):
        r: tuple[str | int, ...] = ("rules", i)
        cats = doc.get((*r, "categories"), list)
        for j, c in enumerate(cats):
            c = str(c)
            if c != "*" and not c.endswith("*") and c not in categories:
                raise doc.error((*r, "categories", j), f"unknown category {c!r}")
        lead = doc.get((*r, "lead"), str)
        if lead not in departments:
            raise doc.error((*r, "lead"), f"unknown department {lead!r}")
        assist = [str(a) for a in doc.get((*r, "assist"), list, [])]
        for j, a in enumerate(assist):
            if a not in departments or a == lead:
                raise doc.error((*r, "assist", j), f"unknown or lead department {a!r}")
        place = str(doc.get((*r, "place"), str, "*"))
        rules.append(Rule(tuple(map(str, cats)), place, lead, tuple(assist), doc.lines.get(r, 0)))
    return Router(centre, departments, rules)
