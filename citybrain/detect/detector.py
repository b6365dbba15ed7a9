"""Streaming, label-free anomaly detector: multi-scale context novelty with seasonal memory.

Each series gets one :class:`Detector`. Values are quantised on a grid fixed after a short warm-up
(the warm-up range split into ``bins`` cells; values outside it simply fall into further cells).
At several time scales (exponential moving averages of 1, 4 and 16 samples) the detector forms a
context -- the quantised level now, one scale ago and two scales ago -- and asks whether it has ever
seen that context before. A seasonal context (hour of day, slow level) catches values that are normal
in general but not at this time of day. Novel contexts are weighted down by how often this series
produces novelty anyway (so noisy series do not alarm constantly), and after an alarm further
alarms are damped for a while: the first sign of new behaviour scores high, its repetitions do not.

Memory is constant per series: the "seen" memory is a fixed-size bitmap indexed by a hash of the
context, and every other piece of state is a fixed number of floats and small ring buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Detector", "DetectorConfig", "default_detector", "detect_series"]


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Detector parameters; identical for every series (no per-series tuning)."""

    bins: int = 8  # quantisation cells across the warm-up range
    warmup: int = 150  # samples used to fix the quantisation grid (score 0 meanwhile)
    scales: tuple[int, ...] = (1, 4, 16)  # EWMA spans of the context levels
    context: int = 2  # past levels in a context (at lags scale, 2*scale, ...)
    rate_alpha: float = 0.005  # EWMA rate of this series' own novelty rate
    season_buckets: int = 24  # time-of-day buckets of the seasonal context
    season_after: int = 2000  # samples before seasonal novelty counts (needs a few days)
    mask: int = 100  # samples during which scores are damped after an alarm
    mask_factor: float = 0.3  # damping factor inside the mask
    fire_level: float = 0.5  # raw score that counts as an alarm (starts the mask)
    out_scale: float = 0.85  # maps raw novelty into [0, 1)
    table_bits: int = 16  # size of the seen-context bitmap: 2**table_bits bits


_DAY = 86400.0
_SEASON_TAG = -1


class Detector:
    """One series' streaming anomaly detector; call :meth:`score` once per observation, in order."""

    __slots__ = (
        "cfg",
        "n",
        "lo",
        "hi",
        "cell",
        "origin",
        "ema",
        "rings",
        "pos",
        "seen",
        "mask_bits",
        "rate",
        "last_alarm",
        "lags",
    )

    def __init__(self, cfg: DetectorConfig | None = None) -> None:
        """Create a detector with the given (or default) configuration."""
        self.cfg = cfg or DetectorConfig()
        c = self.cfg
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.cell = 0.0
        self.origin = 0.0
        self.ema = [0.0] * len(c.scales)
        self.rings: list[list[int]] = [[0] * (c.context * s + 1) for s in c.scales]
        self.pos = [0] * len(c.scales)
        self.seen = bytearray(1 << max(0, c.table_bits - 3))
        self.mask_bits = (1 << c.table_bits) - 1
        self.rate = 0.0
        self.last_alarm = -(1 << 62)
        # ring offsets (negative indices wrap) of the context levels, oldest first, per scale
        self.lags: list[tuple[int, ...]] = [tuple(k * s for k in range(c.context, -1, -1)) for s in c.scales]

    def state_size(self) -> int:
        """Number of stored numbers/bytes in the state (constant: does not grow with the series)."""
        return 8 + len(self.ema) + sum(len(r) for r in self.rings) + len(self.pos) + len(self.seen)

    def score(self, timestamp: float, value: float) -> float:
        """Score one observation (epoch seconds, value); returns an anomaly score in [0, 1]."""
        if not math.isfinite(value):
            return 0.0
        c = self.cfg
        self.n += 1
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        if self.n == 1:
            self.ema = [value] * len(self.ema)
        if self.cell == 0.0:
            if self.n < c.warmup or self.hi <= self.lo:
                return 0.0
            self.cell = (self.hi - self.lo) / c.bins
            self.origin = self.lo
        cell, origin, ema, seen, bits = self.cell, self.origin, self.ema, self.seen, self.mask_bits
        lags_all, n_after = self.lags, self.n - c.warmup
        hits = 0
        rings, pos, floor = self.rings, self.pos, math.floor
        for i, span in enumerate(c.scales):
            e = ema[i] + (value - ema[i]) / span
            ema[i] = e
            ring = rings[i]
            p = pos[i]
            ring[p] = floor((e - origin) / cell)
            size = len(ring)
            pos[i] = p + 1 if p + 1 < size else 0
            lags = lags_all[i]
            if n_after < lags[0]:
                continue  # ring not yet full: no context to judge
            h = hash((i, *[ring[p - lag] for lag in lags])) & bits
            old = seen[h >> 3]
            if not old & (1 << (h & 7)):
                seen[h >> 3] = old | (1 << (h & 7))
                hits += 1
        if c.season_buckets:
            bucket = int((timestamp % _DAY) // (_DAY / c.season_buckets))
            level = math.floor((ema[-1] - origin) / cell)
            h = hash((_SEASON_TAG, bucket, level)) & bits
            old = seen[h >> 3]
            if not old & (1 << (h & 7)):
                seen[h >> 3] = old | (1 << (h & 7))
                if self.n > c.season_after:
                    hits += 1
        nov = hits / len(c.scales)
        out = c.out_scale * nov * (1.0 - self.rate)
        self.rate += c.rate_alpha * (nov - self.rate)
        if self.n - self.last_alarm < c.mask:
            out *= c.mask_factor
        elif out > c.fire_level:
            self.last_alarm = self.n
        return min(1.0, out)


def default_detector() -> Detector:
    """Return the detector exactly as configured in production (same parameters for every series)."""
    return Detector(DetectorConfig())


def detect_series(timestamps: Sequence[float], values: Sequence[float]) -> list[float]:
    """Run a fresh default detector over a whole series; returns one score per observation."""
    if len(timestamps) != len(values):
        raise ValueError("timestamps and values differ in length")
    det = default_detector()
    score = det.score
    return [score(float(t), float(v)) for t, v in zip(timestamps, values, strict=True)]
