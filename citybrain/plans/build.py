"""Assemble a Plan from a parsed plan file (the field checks live in the loader's reader)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from citybrain.plans.spec import Plan, Preposition, Trigger

if TYPE_CHECKING:
    from citybrain.plans.loader import _Reader


def _triggers(r: _Reader, data: Any) -> list[Trigger]:
    if data is None:
        return []
    if not isinstance(data, list):
        r.fail("triggers", "expected a list of triggers")
        return []
    out: list[Trigger] = []
    for i, t in enumerate(data):
        path = f"triggers[{i}]"
        t = r.mapping(t, path)
        r.keys(t, {"id", "level", "when"}, path)
        if "when" not in t:
            r.fail(f"{path}.when", "missing: the condition that fires the trigger")
            continue
        out.append(Trigger(str(t.get("id", f"trigger-{i + 1}")), r.level(t.get("level"), f"{path}.level"),
                           r.condition(t["when"], f"{path}.when"), r.line(path)))
    return out


def _resources(r: _Reader, data: Any) -> list[Preposition]:
    out: list[Preposition] = []
    if data is None:
        return out
    if not isinstance(data, list):
        r.fail("resources", "expected a list of {capability, units, to}")
        return out
    for i, p in enumerate(data):
        path = f"resources[{i}]"
        p = r.mapping(p, path)
        r.keys(p, {"capability", "units", "to"}, path)
        if not isinstance(p.get("capability"), str):
            r.fail(f"{path}.capability", "missing: the capability to pre-position")
        out.append(Preposition(str(p.get("capability", "")), r.count(p.get("units"), f"{path}.units"),
                               str(p.get("to", "low-lying")), r.line(path)))
    return out


def _overrides(r: _Reader, data: Any, source: str) -> tuple[list[dict[str, Any]], float | None]:
    if data is None:
        return [], None
    data = r.mapping(data, "overrides")
    r.keys(data, {"rules", "detectors"}, "overrides")
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        r.fail("overrides.rules", "expected a list of rules in rule-file syntax")
        rules = []
    if rules:
        try:
            from citybrain.rules import parse_rules

            parse_rules(yaml.safe_dump({"version": 1, "rules": rules}, allow_unicode=True), f"{source} overrides",
                        r.quantities)
        except ImportError:
            pass
        except Exception as exc:  # a RuleFileError: report it at the overrides line
            r.fail("overrides.rules", f"invalid rule override: {getattr(exc, 'detail', exc)}")
    threshold = None
    det = data.get("detectors")
    if det is not None:
        det = r.mapping(det, "overrides.detectors")
        r.keys(det, {"threshold"}, "overrides.detectors")
        threshold = r.number(det.get("threshold"), "overrides.detectors.threshold")
        if threshold is not None and not 0 < threshold < 1:
            r.fail("overrides.detectors.threshold", "expected a number between 0 and 1")
    return list(rules), threshold


def build_plan(r: _Reader, data: dict[str, Any], source: str) -> Plan:
    """Read every section of a plan file, collecting problems in the reader."""
    pid = data.get("plan")
    if not isinstance(pid, str) or not pid:
        r.fail("plan", "missing: the plan's id, e.g. rainstorm")
    triggers = _triggers(r, data.get("triggers"))
    manual = bool(data.get("manual", True))
    if not triggers and not manual:
        r.fail("triggers", "a plan needs triggers unless manual: true")
    confirm = r.mapping(data.get("confirm", {}), "confirm")
    r.keys(confirm, {"roles", "auto"}, "confirm")
    roles = confirm.get("roles", ["command_centre", "city_operator", "admin"])
    if not isinstance(roles, list) or not all(isinstance(x, str) for x in roles):
        r.fail("confirm.roles", "expected a list of roles")
        roles = ["command_centre"]
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, list):
        r.fail("tasks", "expected a list of tasks")
        tasks_data = []
    seen: set[str] = set()
    tasks = [t for i, d in enumerate(tasks_data) if (t := r.task(d, f"tasks[{i}]", seen)) is not None]
    rules, threshold = _overrides(r, data.get("overrides"), source)
    reporting = r.mapping(data.get("reporting", {}), "reporting")
    r.keys(reporting, {"communities"}, "reporting")
    end = r.mapping(data.get("end", {}), "end")
    r.keys(end, {"when", "after"}, "end")
    scenario = r.mapping(data.get("scenario", {}), "scenario")
    r.keys(scenario, {"window", "start", "end"}, "scenario")
    return Plan(
        id=str(pid or ""), name=str(data.get("name", pid or "")), area=data.get("area"), triggers=triggers,
        tasks=tasks, manual=manual, confirm_roles=tuple(roles), auto_confirm=bool(confirm.get("auto", False)),
        rules=rules, detector_threshold=threshold,
        reporting=r.duration(reporting.get("communities"), "reporting.communities"),
        resources=_resources(r, data.get("resources")),
        end=r.condition(end["when"], "end.when") if "when" in end else None,
        max_duration=r.duration(end.get("after"), "end.after"),
        recovery=r.duration(data.get("recovery"), "recovery", 6 * 3600.0) or 0.0,
        scenario={k: str(v) for k, v in scenario.items()}, source=source)
