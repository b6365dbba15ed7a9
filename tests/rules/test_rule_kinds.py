"""Each kind of rule condition, judged by the engine on streams of observations."""

from __future__ import annotations

from datetime import UTC, datetime

from citybrain.model.types import known_quantities
from citybrain.rules import parse_rules
from citybrain.rules.engine import RuleEngine
from citybrain.signals import Signal

T0 = datetime(2016, 7, 20, 0, 0, tzinfo=UTC).timestamp()  # 08:00 Beijing, a Wednesday
CELL = {"grid": "g1", "community": "c1", "city": "bj"}
CELL2 = {"grid": "g2", "community": "c1", "city": "bj"}


def engine(text: str, within: dict[str, set[str]] | None = None) -> RuleEngine:
    eng = RuleEngine(parse_rules("rules:\n" + text, "t.yaml", known_quantities()))
    inside = within or {}
    eng.within = lambda place, area: place == area or area in inside.get(place, set())
    return eng


def feed(eng: RuleEngine, points: list[tuple[str, str, float, float]], areas: dict = CELL) -> list[Signal]:
    out: list[Signal] = []
    for entity, attr, minutes, value in points:
        out += eng.observe(entity, attr, T0 + minutes * 60, value, areas)
    return out


RULE = "  - id: r\n    category: test.cat\n    quantity: pm25\n"


def test_threshold_levels_and_clear() -> None:
    eng = engine(RULE + "    levels:\n      blue: {above: 75}\n      red: {above: 250}\n")
    sigs = feed(eng, [("s1", "pm25", 0, 50), ("s1", "pm25", 1, 80), ("s1", "pm25", 2, 300), ("s1", "pm25", 3, 10)])
    assert [s.level for s in sigs] == ["blue", "red", "none"]
    assert sigs[1].evidence == ["pm25 = 300 ≥ 250"] and sigs[1].place == "g1" and sigs[1].community == "c1"


def test_duration_above_for_10_minutes() -> None:
    eng = engine(RULE + "    levels:\n      yellow: {above: 100, for: 10m}\n")
    sigs = feed(eng, [("s1", "pm25", m, 120) for m in range(0, 12, 2)])
    assert [s.level for s in sigs] == ["yellow"] and sigs[0].ts == T0 + 600
    assert feed(eng, [("s1", "pm25", 13, 90), ("s1", "pm25", 14, 150)])[0].level == "none"
    assert feed(eng, [("s1", "pm25", 20, 150)]) == []  # the timer restarted at minute 14


def test_window_sum_and_mean() -> None:
    eng = engine("  - id: rain\n    category: flood.rainstorm\n    quantity: precipitation\n    levels:\n"
                 "      blue: {stat: sum, window: 12h, above: 50}\n      orange: {stat: sum, window: 3h, above: 50}\n")
    hourly = [("w", "precipitation", h * 60, v) for h, v in enumerate([5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 20, 20, 20])]
    assert [(s.level, round((s.ts - T0) / 3600)) for s in feed(eng, hourly)] == [("blue", 9), ("orange", 13)]


def test_rate_of_change() -> None:
    eng = engine(RULE + "    levels:\n      orange: {rise: 100, per: 2h}\n")
    sigs = feed(eng, [("s1", "pm25", 0, 40), ("s1", "pm25", 60, 90), ("s1", "pm25", 119, 145), ("s1", "pm25", 300, 150)])
    assert [s.level for s in sigs] == ["orange", "none"]


def test_absence_of_data() -> None:
    eng = engine(RULE + "    levels:\n      blue: {absent: 30m}\n")
    assert feed(eng, [("s1", "pm25", 0, 40)]) == []
    assert eng.sweep(T0 + 20 * 60) == []
    late = eng.sweep(T0 + 31 * 60)
    assert [s.level for s in late] == ["blue"] and "no pm25 data for 30m" in late[0].evidence
    assert [s.level for s in feed(eng, [("s1", "pm25", 32, 40)])] == ["none"]


def test_composite_and_or_across_quantities() -> None:
    eng = engine(RULE + "    levels:\n      yellow:\n        all:\n          - {above: 150}\n"
                 "          - {quantity: windSpeed, below: 1.5}\n      red:\n        any:\n          - {above: 500}\n"
                 "          - all: [{above: 250}, {quantity: windSpeed, below: 1}]\n")
    assert feed(eng, [("s1", "pm25", 0, 200)]) == []  # no wind yet
    assert [s.level for s in feed(eng, [("s1", "windSpeed", 1, 1.2)])] == ["yellow"]
    assert [s.level for s in feed(eng, [("s1", "windSpeed", 2, 0.5), ("s1", "pm25", 3, 300)])] == ["red"]
    assert [s.level for s in feed(eng, [("s1", "windSpeed", 4, 5.0)])] == ["none"]


def test_three_of_five_sensors_in_the_community() -> None:
    eng = engine("  - id: flood\n    category: flood.waterlogging\n    quantity: precipitation\n"
                 "    scope: community\n    levels:\n      orange: {at_least: 3, of: {above: 30}}\n"
                 "      red: {fraction: 0.8, of: {above: 30}}\n")
    sigs = feed(eng, [(f"w{i}", "precipitation", 0, 10) for i in range(5)])
    sigs += feed(eng, [("w0", "precipitation", 60, 40), ("w1", "precipitation", 60, 45)])
    assert sigs == []
    third = feed(eng, [("w2", "precipitation", 60, 31)], CELL2)
    assert [(s.level, s.unit, s.place) for s in third] == [("orange", "c1", "g2")]
    assert "3 sensors: w0, w1, w2" in third[0].evidence[0]
    assert [s.level for s in feed(eng, [("w3", "precipitation", 61, 50)])] == ["red"]
    assert [s.level for s in feed(eng, [("w0", "precipitation", 120, 0), ("w1", "precipitation", 120, 0)])] == [
        "orange", "none"]


def test_time_of_day_schedule() -> None:
    eng = engine("  - id: night\n    category: traffic.night\n    quantity: intensity\n"
                 "    schedule: {hours: \"22:00-06:00\", days: [mon, tue, wed, thu, fri], utc_offset: \"+08:00\"}\n"
                 "    levels:\n      blue: {above: 1000}\n")
    # 08:00 Beijing: outside the schedule; 22:30 Beijing (14:30 UTC): inside
    assert feed(eng, [("t", "intensity", 0, 5000)]) == []
    assert [s.level for s in feed(eng, [("t", "intensity", 14.5 * 60, 5000)])] == ["blue"]
    assert [s.level for s in feed(eng, [("t", "intensity", 23 * 60, 5000)])] == ["none"]  # 07:00 next day


def test_per_place_override() -> None:
    text = (RULE + "    levels:\n      blue: {above: 75}\n    overrides:\n      - place: c2\n"
            "        levels: {blue: {above: 35}}\n      - place: c3\n        enabled: false\n")
    from citybrain.rules.spec import Override

    eng = engine(text)
    assert isinstance(eng.rules[0].overrides[0], Override)
    inside = {"g2": {"c2"}, "g3": {"c3"}}
    eng.within = lambda place, area: place == area or area in inside.get(place, set())
    assert feed(eng, [("a", "pm25", 0, 50)]) == []
    assert [s.level for s in feed(eng, [("b", "pm25", 0, 50)], {"grid": "g2", "community": "c2"})] == ["blue"]
    assert feed(eng, [("c", "pm25", 0, 500)], {"grid": "g3", "community": "c3"}) == []


def test_place_pinned_condition() -> None:
    eng = engine("  - id: upstream\n    category: flood.river\n    quantity: precipitation\n    scope: community\n"
                 "    levels:\n      yellow:\n        all:\n          - {above: 10}\n"
                 "          - {above: 30, place: c9}\n")
    eng.rules[0].pinned.add("c9")
    eng.pinned["c9"] = [eng.rules[0]]
    eng.levels_fed.add("community")
    assert feed(eng, [("w1", "precipitation", 0, 20)]) == []
    sigs = feed(eng, [("w9", "precipitation", 1, 40)], {"grid": "g9", "community": "c9"})
    assert sorted((s.level, s.unit) for s in sigs) == [("yellow", "c1"), ("yellow", "c9")]
