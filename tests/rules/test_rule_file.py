"""Rule files: validation errors name line and field; unknown quantities and places are rejected at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.model.types import known_quantities
from citybrain.rules import RuleFileError, load_rules, parse_rules

Q = known_quantities()


def problems(text: str, places: set[str] | None = None) -> list[dict]:
    with pytest.raises(RuleFileError) as err:
        parse_rules(text, "ops.yaml", Q, places)
    assert err.value.field == err.value.problems[0]["field"]
    assert "ops.yaml:" in err.value.detail
    return err.value.problems


def test_default_file_loads() -> None:
    rules = load_rules(None, Q, set())
    ids = {r.id for r in rules}
    assert {"pm25-heavy-pollution", "rainstorm", "short-heavy-rain"} <= ids
    assert all(r.line > 0 for r in rules)


def test_bad_number_names_line_and_field() -> None:
    text = """rules:
  - id: r1
    category: air.pollution
    quantity: pm25
    levels:
      blue: {above: lots}
"""
    got = problems(text)
    assert got == [{"line": 6, "field": "rules[0].levels.blue.above", "error": "expected a number, got 'lots'"}]


def test_unknown_quantity_and_place_rejected_at_load() -> None:
    text = """rules:
  - id: r1
    category: air.pollution
    quantity: pm2_5
    levels:
      blue: {above: 1}
  - id: r2
    category: flood.waterlogging
    quantity: precipitation
    scope: community
    levels:
      blue: {at_least: 1, of: {above: 1}}
    overrides:
      - place: urn:ngsi-ld:Community:atlantis
        enabled: false
"""
    got = problems(text, places={"urn:ngsi-ld:Community:c1"})
    fields = {(p["line"], p["field"]) for p in got}
    assert (4, "rules[0].quantity") in fields
    assert (14, "rules[1].overrides[0].place") in fields
    assert any("unknown place urn:ngsi-ld:Community:atlantis" in p["error"] for p in got)


@pytest.mark.parametrize(("snippet", "field", "words"), [
    ("      blue: {above: 1, window: soon, stat: mean}", "rules[0].levels.blue.window", "duration"),
    ("      purple: {above: 1}", "rules[0].levels.purple", "unknown warning level"),
    ("      blue: {above: 1, stat: median, window: 1h}", "rules[0].levels.blue.stat", "unknown statistic"),
    ("      blue: {above: 1, colour: red}", "rules[0].levels.blue.colour", "unknown field"),
    ("      blue: {at_least: 3, of: {above: 1}}", "rules[0].levels.blue.of", "place scope"),
    ("      blue: {stat: mean, above: 1}", "rules[0].levels.blue.window", "needs a window"),
    ("      blue: {wobble: 1}", "rules[0].levels.blue", "not a condition"),
])
def test_each_mistake_is_reported(snippet: str, field: str, words: str) -> None:
    text = f"rules:\n  - id: r1\n    category: c\n    quantity: pm25\n    levels:\n{snippet}\n"
    got = problems(text)
    hit = [p for p in got if p["field"] == field]
    assert hit and words in hit[0]["error"] and hit[0]["line"] == 6, got


def test_missing_fields_duplicates_and_yaml_errors() -> None:
    got = problems("rules:\n  - id: a\n    quantity: pm25\n    levels: {blue: {above: 1}}\n"
                   "  - id: a\n    category: c\n    quantity: pm25\n    levels: {blue: {above: 1}}\n")
    assert {"field": "rules[0].category", "line": 2, "error": "required field is missing"} in got
    assert any(p["field"] == "rules[1].id" and p["line"] == 5 and "duplicate" in p["error"] for p in got)
    bad = problems("rules:\n  - id: [unclosed\n")
    assert bad[0]["field"] == "(file)" and bad[0]["line"] >= 2


def test_rule_file_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("rules:\n  - id: x\n    category: c\n    quantity: pm25\n    levels: {red: {above: 9}}\n")
    assert [r.id for r in load_rules(path, Q)] == ["x"]
    with pytest.raises(RuleFileError) as err:
        load_rules(tmp_path / "missing.yaml", Q)
    assert "cannot read" in err.value.detail
