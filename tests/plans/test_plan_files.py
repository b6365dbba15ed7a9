"""Plan files: the shipped plans load; mistakes are reported with line and field, all at once."""

from __future__ import annotations

import pytest

from citybrain.plans.loader import PlanFileError, library, load_plan, parse_plan

GOOD = """plan: test
triggers:
  - id: rain
    level: IV
    when:
      observation: {quantity: precipitation, above: 10, at_least: 2}
tasks:
  - {id: pumps, department: water, task: Pump, within: 1h}
  - {id: homes, communities: low-lying, task: Check homes, within: 2h}
"""


def test_shipped_plans_load() -> None:
    assert {"rainstorm", "smog"} <= set(library())
    rain = load_plan("rainstorm")
    assert rain.triggers[0].level == "IV" and rain.reporting == 600.0
    assert "water" in rain.departments() and rain.rules[0]["id"] == "short-heavy-rain"
    assert load_plan("smog").scenario["window"] == "smog"


def test_a_good_plan_parses() -> None:
    plan = parse_plan(GOOD)
    assert [t.id for t in plan.tasks] == ["pumps", "homes"]
    assert plan.tasks[0].within == 3600.0


def test_unknown_department_names_line_and_field() -> None:
    text = GOOD.replace("department: water", "department: wizardry")
    with pytest.raises(PlanFileError) as err:
        parse_plan(text, "bad.yaml")
    assert err.value.problems == [{"line": 8, "field": "tasks[0].department", "error": "unknown department 'wizardry'"}]
    assert "bad.yaml:8: tasks[0].department" in str(err.value)


def test_every_mistake_is_listed() -> None:
    text = GOOD.replace("quantity: precipitation", "quantity: rainfal").replace("within: 2h", "within: soon")
    text = text.replace("level: IV", "level: V") + "colour: red\n"
    with pytest.raises(PlanFileError) as err:
        parse_plan(text)
    fields = {(p["field"], p["line"]) for p in err.value.problems}
    assert ("triggers[0].level", 4) in fields
    assert ("triggers[0].when.observation.quantity", 6) in fields
    assert ("tasks[1].within", 9) in fields
    assert ("colour", 10) in fields


def test_invalid_yaml_and_wrong_shapes() -> None:
    with pytest.raises(PlanFileError, match="not valid YAML") as err:
        parse_plan("plan: x\ntasks: [\n")
    assert err.value.problems[0]["line"] >= 2
    with pytest.raises(PlanFileError, match="expected a mapping"):
        parse_plan("- just a list\n")
    with pytest.raises(PlanFileError, match="give exactly one of above, below"):
        parse_plan(GOOD.replace("above: 10", "above: 10, below: 3"))
    with pytest.raises(PlanFileError, match="invalid rule override"):
        parse_plan(GOOD + "overrides:\n  rules:\n    - {id: x, quantity: nothing, levels: {}}\n")
    with pytest.raises(PlanFileError, match="cannot read"):
        load_plan("/nonexistent/plan.yaml")
