"""Indicators of long-term operation: defined in a YAML file, computed from the platform's own records.

Component `setup(rt)` loads the indicator file (settings.extra["indicators"] may name "file" and "weights")
and registers rt.ports.indicators: `evaluate(from, to, area)` for reports and the API, and
`kpis(within)` for the dashboard (the score of the last 7 days).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from citybrain.clock import iso
from citybrain.indicators.engine import evaluate
from citybrain.indicators.spec import IndicatorError, IndicatorSet, load_indicators
from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

__all__ = ["IndicatorBoard", "IndicatorError", "IndicatorSet", "evaluate", "load_indicators", "setup"]

KPI_DAYS = 7
KPI_CACHE_S = 300.0


class IndicatorBoard:
    """rt.ports.indicators: the loaded indicator set and the evaluations built on it."""

    def __init__(self, rt: CityBrain, iset: IndicatorSet) -> None:
        self.rt = rt
        self.iset = iset
        self._kpis: dict[str | None, tuple[float, dict[str, Any]]] = {}

    async def evaluate(self, start: str, end: str, area: str | None = None, trend: int = 3, compare: bool = True,
                       only: str | None = None) -> dict[str, Any]:
        """Compute the indicators for a period and area (with trends and sub-area comparison)."""
        return await evaluate(self.rt, self.iset, start, end, area, trend, compare, only)

    async def kpis(self, within: str | None = None) -> dict[str, Any]:
        """Return the total score (0-100) of the last 7 days for the dashboard (cached 5 clock minutes)."""
        now = self.rt.clock.monotonic()
        hit = self._kpis.get(within)
        if hit is not None and now - hit[0] < KPI_CACHE_S:
            return hit[1]
        end = self.rt.clock.now()
        got = await self.evaluate(iso(end - timedelta(days=KPI_DAYS)), iso(end), within, trend=0, compare=False)
        body = {"score": got["score"], "coverage": got["coverage"], "from": got["from"], "to": got["to"],
                "dimensions": {k: v["score"] for k, v in got["dimensions"].items()}}
        self._kpis[within] = (now, body)
        return body


def board_of(rt: CityBrain) -> IndicatorBoard:
    """Return the runtime's indicator board (set up on first use when the component is not listed)."""
    board = rt.ports.find_own(Ports.indicators, IndicatorBoard)
    if board is None:
        conf: dict[str, Any] = dict(rt.settings.extra.get("indicators", {}))
        board = IndicatorBoard(rt, load_indicators(conf.get("file"), conf.get("weights")))
        rt.ports.indicators = board
    return board


async def setup(rt: CityBrain) -> None:
    """Load the indicator file (a bad file stops the start with its line and field) and register the board."""
    board_of(rt)
