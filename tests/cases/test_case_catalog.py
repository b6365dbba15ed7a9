"""The editable catalog files: the shipped ones load; mistakes name the file, the line and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citybrain.cases.catalog import HERE, load_catalog
from citybrain.cases.cli import cases_app
from citybrain.cases.yamlfile import CatalogError


def edited(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (HERE / name).read_text(encoding="utf-8")
    assert old in text
    out = tmp_path / name
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def test_shipped_catalog() -> None:
    cat = load_catalog()
    assert {c.kind for c in cat.categories.values()} == {"component", "event"}
    assert cat.category("C0110").zh == "路灯" and cat.category("E0505").clock == "natural"
    assert cat.for_alert("air.pollution") == "E0601" and cat.for_alert("flood.river") == "E0505"
    assert cat.for_alert("quake.strong") == cat.default_category
    assert cat.router.route("E9901", None, None) is None  # the command centre decides


@pytest.mark.parametrize(("name", "old", "new", "field", "needle"), [
    ("catalog.yaml", "limit_hours: 24,\n     filing: [不亮", "limit_hours: -3,\n     filing: [不亮",
     "categories[3].limit_hours", "code: C0110"),
    ("catalog.yaml", "code: C0201, kind: component", "code: C0201, kind: event", "categories[4].kind", "C0201"),
    ("catalog.yaml", "air.pollution: E0601", "air.pollution: E7777", "alerts.air.pollution", "air.pollution"),
    ("routing.yaml", "lead: drainage}", "lead: plumbers}", "rules[1].lead", "C0103"),
    ("routing.yaml", "categories: [C0210]", "categories: [C0299]", "rules[5].categories[0]", "C0299"),
    ("calendar.yaml", '"13:00-18:00"', '"13:00-25:00"', "calendars.default.hours[1]", "hours:"),
    ("calendar.yaml", "2026-04-06,", "2026-04-31,", "calendars.default.holidays[7]", "2026-04-31"),
    ("matters.yaml", "department: fire,", "department: firemen,", "matters[0].tasks[1].department", "firemen"),
])
def test_mistakes_name_line_and_field(tmp_path: Path, name: str, old: str, new: str, field: str, needle: str) -> None:
    path = edited(tmp_path, name, old, new)
    with pytest.raises(CatalogError) as err:
        load_catalog(**{name.split(".")[0]: path})
    assert err.value.field == field, err.value.detail
    assert err.value.detail.startswith(f"{name}:{line_of(path, needle)}: {field}: ")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    bad = tmp_path / "routing.yaml"
    bad.write_text("command_centre: c\ndepartments:\n  water: {zh: 水, en: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(routing=bad)
    assert err.value.detail.startswith("routing.yaml:") and err.value.field == "yaml"
    result = CliRunner().invoke(cases_app, ["check-catalog", "--routing", str(bad)])
    assert result.exit_code == 1 and "routing.yaml:" in result.output
    assert "ok:" in CliRunner().invoke(cases_app, ["check-catalog"]).output


def test_working_calendar() -> None:
    cal = load_catalog().calendars["default"]
    fri = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)  # Friday 16:00 in Beijing
    assert cal.add_hours(fri, 4) == datetime(2026, 3, 9, 3, 0, tzinfo=UTC)  # 2 h Friday, 2 h Monday (11:00)
    assert cal.hours_between(fri, datetime(2026, 3, 9, 3, 0, tzinfo=UTC)) == 4.0
    before_holiday = datetime(2026, 9, 30, 9, 0, tzinfo=UTC)  # Wed 17:00; Oct 1–7 off except the weekend Oct 3/4
    assert cal.add_hours(before_holiday, 2) == datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
    makeup = datetime(2026, 2, 14, 1, 0, tzinfo=UTC)  # Saturday 14 Feb 2026 is a make-up working day
    assert cal.add_hours(makeup, 1) == datetime(2026, 2, 14, 2, 0, tzinfo=UTC)
    assert cal.hours_between(datetime(2026, 3, 7, 0, 0, tzinfo=UTC), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)) == 0
