"""Streaming, label-free anomaly detector: multi-scale context novelty, daily memory, likelihood.

Each series gets one :class:`Detector`. Values are quantised on a grid fixed after a short warm-up
(the warm-up range split into ``bins`` cells; values outside it simply fall into further cells).

1. **Novelty.** At three time scales (exponential moving averages of 1, 4 and 16 samples) the
   detector forms a context -- the quantised level now, one scale ago and two scales ago -- and asks
   whether it has ever seen that context before. A seasonal context (hour of day, slow level) adds
   a vote once a few days are known. The raw score is the fraction of novel contexts.
2. **Daily memory.** A time-of-day table remembers the largest raw score seen in each slot on
   earlier days (decaying geometrically day by day); today's raw score is discounted by it, so
   surprises that recur at the same time every day (nightly jobs, daily spikes) stop alarming.
3. **Likelihood.** Like HTM's anomaly likelihood, the raw score is compared with its own long-run
   mean and spread (exponentially weighted, spread floored at ``sigma_floor``); the Gaussian tail
   probability is mapped to ``log(tail) / log(1e-10)`` in [0, 1]. This puts every series on one
   scale, so one threshold fits all.
4. **Suppression.** After an output reaches ``fire_level`` the next ``mask`` outputs are zeroed:
   the first sign of new behaviour scores high, its repetitions do not.

Memory is constant per series: the "seen" memory is a fixed-size bitmap indexed by a hash of the
context, and every other piece of state is a fixed number of floats and small fixed-size buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Detector", "DetectorConfig", "default_detector", "detect_series"]


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Detector parameters; identical for every series (no per-series tuning)."""

    bins: int = 6  # quantisation cells across the warm-up range
    warmup: int = 150  # samples used to fix the quantisation grid (score 0 meanwhile)
    season_buckets: int = 24  # time-of-day buckets of the seasonal context
    season_after: int = 2000  # samples before seasonal novelty counts (needs a few days)
    day_slots: int = 96  # time-of-day slots of the daily memory (15 minutes each)
    day_decay: float = 0.4  # per-day decay of the daily memory
    like_alpha: float = 0.001  # EWMA rate of the raw score's long-run mean and variance
    sigma_floor: float = 0.12  # floor of the raw score's standard deviation
    mask: int = 100  # outputs zeroed after an alarm
    fire_level: float = 0.5  # output that counts as an alarm (starts the mask)
    table_bits: int = 16  # size of the seen-context bitmap: 2**table_bits bits


_DAY = 86400.0
_SCALES = (1, 4, 16)  # EWMA spans of the context levels (the ring below holds 2 * 16 + 1 levels)
_RING = 2 * _SCALES[-1] + 1
_LOG_TINY = -math.log(1e-10)
_SQRT_HALF = math.sqrt(0.5)


class Detector:
    """One series' streaming anomaly detector; call :meth:`score` once per observation, in order."""

    __slots__ = (
        "cfg", "n", "lo", "hi", "inv", "origin", "e4", "e16", "r1", "r4", "r16", "pos",
        "seen", "bits", "day", "slot", "mu", "var", "last_alarm", "_season_w", "_day_w",
    )  # fmt: skip

    def __init__(self, cfg: DetectorConfig | None = None) -> None:
        """Create a detector with the given (or default) configuration."""
        self.cfg = c = cfg or DetectorConfig()
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.inv = 0.0  # 1 / cell width once the grid is fixed
        self.origin = 0.0
        self.e4 = self.e16 = 0.0
        self.r1, self.r4, self.r16 = [0] * _RING, [0] * _RING, [0] * _RING
        self.pos = 0
        self.seen = bytearray(1 << max(0, c.table_bits - 3))
        self.bits = (1 << c.table_bits) - 1
        self.day = [0.0] * max(1, c.day_slots)
        self.slot = -1
        self.mu = self.var = 0.0
        self.last_alarm = -(1 << 62)
        self._season_w = _DAY / c.season_buckets if c.season_buckets else 0.0
        self._day_w = _DAY / c.day_slots if c.day_slots else 0.0

    def state_size(self) -> int:
        """Number of stored numbers/bytes in the state (constant: does not grow with the series)."""
        return 14 + 3 * _RING + len(self.seen) + len(self.day)

    def _fix_grid(self, value: float) -> bool:
        """Warm-up step: track the range; fix the grid once ``warmup`` samples are in."""
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        if self.n == 1:
            self.e4 = self.e16 = value
        if self.n < self.cfg.warmup or self.hi <= self.lo:
            return False
        self.inv = self.cfg.bins / (self.hi - self.lo)
        self.origin = self.lo
        self.n = 0  # from here on n counts samples on the fixed grid
        return True

    def score(self, timestamp: float, value: float) -> float:
        """Score one observation (epoch seconds, value); returns an anomaly score in [0, 1]."""
        if not -1e300 < value < 1e300:  # NaN, infinities
            return 0.0
        self.n = n = self.n + 1
        if self.inv == 0.0:
            self._fix_grid(value)
            return 0.0
        c = self.cfg
        e4 = self.e4 = self.e4 + (value - self.e4) * 0.25
        e16 = self.e16 = self.e16 + (value - self.e16) * 0.0625
        origin, inv, p = self.origin, self.inv, self.pos
        r1, r4, r16 = self.r1, self.r4, self.r16
        q16 = math.floor((e16 - origin) * inv)
        r1[p] = q1 = math.floor((value - origin) * inv)
        r4[p] = q4 = math.floor((e4 - origin) * inv)
        r16[p] = q16
        self.pos = p + 1 if p + 1 < _RING else 0
        seen, bits = self.seen, self.bits
        hits = 0
        if n > _RING:  # rings full: contexts are complete
            for h in (
                hash((1, r1[p - 2], r1[p - 1], q1)) & bits,
                hash((4, r4[p - 8], r4[p - 4], q4)) & bits,
                hash((16, r16[p - 32], r16[p - 16], q16)) & bits,
            ):
                old = seen[h >> 3]
                if not old & (1 << (h & 7)):
                    seen[h >> 3] = old | (1 << (h & 7))
                    hits += 1
        if self._season_w:
            h = hash((-1, int((timestamp % _DAY) // self._season_w), q16)) & bits
            old = seen[h >> 3]
            if not old & (1 << (h & 7)):
                seen[h >> 3] = old | (1 << (h & 7))
                if n > c.season_after:
                    hits += 1
        raw = hits / 3.0
        if self._day_w:  # discount surprises that happened at this time of day before
            day = self.day
            s = int((timestamp % _DAY) // self._day_w)
            prev = day[s]
            if s != self.slot:
                day[s] = prev * c.day_decay
                self.slot = s
            if raw > day[s]:
                day[s] = raw
            raw *= 1.0 - prev
        mu, var = self.mu, self.var
        sd = math.sqrt(var) if var > c.sigma_floor * c.sigma_floor else c.sigma_floor
        tail = 0.5 * math.erfc((raw - mu) / sd * _SQRT_HALF)
        out = -math.log(tail + 1e-10) / _LOG_TINY
        d = raw - mu
        self.mu = mu + c.like_alpha * d
        self.var = var + c.like_alpha * (d * d - var)
        if n - self.last_alarm < c.mask:
            return 0.0
        if out >= c.fire_level:
            self.last_alarm = n
        return 1.0 if out > 1.0 else (out if out > 0.0 else 0.0)


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
