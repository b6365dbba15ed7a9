"""Run the streaming anomaly detector on every numeric series and turn high scores into de-noised signals.

One detector per (entity, attribute), constant memory each. The detector is the product's default
(`citybrain.detect.default_detector`); when that package is not installed a small EWMA z-score stand-in
is used so the pipeline still runs. De-noising: no verdicts during a warm-up, a high bar (score ≥
threshold), and a signal stays on until the series has been quiet for `hold` seconds of data time, so
one anomalous episode is one signal, not one per point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from citybrain.clock import iso_of
from citybrain.signals import Signal


class SeriesDetector(Protocol):
    """A per-series streaming detector."""

    def score(self, ts_epoch: float, value: float) -> float:
        """Return the anomaly score in [0, 1] of this point."""
        ...


class EwmaDetector:
    """Stand-in detector: exponentially weighted mean/variance, score = how many sigmas away, squashed."""

    __slots__ = ("mean", "var", "n", "alpha")

    def __init__(self, alpha: float = 0.02) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.alpha = alpha

    def score(self, ts_epoch: float, value: float) -> float:
        """Return a score in [0, 1] (0.5 at 3 sigma, near 1 beyond 6 sigma)."""
        self.n += 1
        if self.n == 1:
            self.mean = value
            return 0.0
        diff = value - self.mean
        sd = math.sqrt(self.var) if self.var > 0 else 0.0
        z = abs(diff) / sd if sd > 1e-9 else 0.0
        self.mean += self.alpha * diff
        self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return 1.0 / (1.0 + math.exp(-(z - 4.5) * 1.5))


def detector_factory() -> tuple[Callable[[], SeriesDetector], str]:
    """Return the product's default detector factory and its name (the stand-in if it is missing)."""
    try:
        from citybrain.detect import default_detector  # type: ignore[attr-defined]
    except ImportError:
        return EwmaDetector, "ewma-standin"
    return default_detector, "citybrain.detect"


class _Series:
    __slots__ = ("detector", "n", "last_high", "active", "peak")

    def __init__(self, detector: SeriesDetector) -> None:
        self.detector = detector
        self.n = 0
        self.last_high = 0.0
        self.active = False
        self.peak = 0.0


class Detectors:
    """One detector per numeric series; emits a signal when a series turns anomalous and when it calms."""

    def __init__(self, threshold: float = 0.99, warmup: int = 72, hold: float = 3 * 3600.0,
                 factory: Callable[[], SeriesDetector] | None = None, skip: set[str] | None = None) -> None:
        made, self.name = detector_factory()
        self.factory = factory or made
        self.threshold = threshold
        self.warmup = warmup
        self.hold = hold
        self.skip = skip if skip is not None else {"windDirection"}
        self.series: dict[tuple[str, str], _Series] = {}
        self.scored = 0

    def observe(self, entity: str, attr: str, ts: float, value: float, areas: dict[str, str]) -> Signal | None:
        """Score one point; return a signal when the series' anomaly state changes."""
        if attr in self.skip:
            return None
        key = (entity, attr)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series(self.factory())
        score = float(s.detector.score(ts, value))
        self.scored += 1
        s.n += 1
        if s.n <= self.warmup:
            return None
        if score >= self.threshold:
            s.last_high = ts
            if not s.active:
                s.active, s.peak = True, score
                return self._signal(entity, attr, ts, value, areas, "informational", score)
            s.peak = max(s.peak, score)
        elif s.active and ts - s.last_high >= self.hold:
            s.active = False
            return self._signal(entity, attr, ts, value, areas, "none", score)
        return None

    def _signal(self, entity: str, attr: str, ts: float, value: float, areas: dict[str, str], level: str,
                score: float) -> Signal:
        words = (f"{attr} = {value:g} scored {score:.3f} ≥ {self.threshold} by the {self.name} detector"
                 if level != "none" else f"{attr} back to normal (score {score:.3f})")
        return Signal(source="detector", source_id=f"detector:{attr}", unit=f"{entity}#{attr}", level=level,
                      category=f"anomaly.{attr}", place=areas.get("grid"), community=areas.get("community"),
                      observed_at=iso_of(ts), ts=ts, quantity=attr, entity=entity, value=value, evidence=[words],
                      score=score, rule_name=f"anomaly detector ({self.name})", sub_category=attr)

    def stats(self) -> dict[str, Any]:
        """Return counts for introspection."""
        return {"detector": self.name, "series": len(self.series), "scored": self.scored,
                "active": sum(1 for s in self.series.values() if s.active), "threshold": self.threshold}
