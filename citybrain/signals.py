"""Signals and warning levels: the vocabulary rules, detectors, risk, alerts and plans share (platform floor).

A rule or a detector that changes its verdict on a unit emits a `Signal`; risk and alerts consume them. The
warning levels are China's standard 预警 colours, lowest first, each with its Smart Data Models severity.
"""

from __future__ import annotations

from typing import Any

import msgspec

# Chinese standard warning levels (预警级别), lowest first, with the Smart Data Models Alert severity each maps to.
LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
SEVERITY: dict[str, str] = {"informational": "informational", "blue": "low", "yellow": "medium",
                            "orange": "high", "red": "critical"}
RANK: dict[str, int] = {"none": 0, "informational": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}


class Signal(msgspec.Struct, kw_only=True):
    """A rule or detector changed its verdict on one unit (sensor or place): the input of risk and alerts."""

    source: str  # "rule" or "detector"
    source_id: str  # rule id, or "nab:<attr>" for detectors
    unit: str  # entity id (sensor scope) or place id
    level: str  # none, informational, blue … red
    category: str
    place: str | None  # the grid cell, or the place for place-scope rules
    community: str | None
    observed_at: str
    ts: float
    quantity: str = ""
    entity: str | None = None
    value: Any = None
    evidence: list[str] = []
    scope: str = "sensor"
    score: float = 0.0
    rule_name: str = ""
    sub_category: str = ""
