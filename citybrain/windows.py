"""Rolling windows in constant memory (platform floor): the situation's per-place statistics and the rules'
windows are both built on `Rolling`, and two windows of one span merge exactly (`merge_rolling`).
"""

from __future__ import annotations

from collections import deque
from typing import Any


def numeric(value: Any) -> float | None:
    """Return the value as a float if it is a number (booleans and text are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


class Rolling:
    """Count, sum, max and min over a sliding time window, kept in 24 buckets (constant memory)."""

    __slots__ = ("span", "width", "buckets")

    def __init__(self, span: float, buckets: int = 24) -> None:
        self.span = span
        self.width = span / buckets
        self.buckets: deque[list[float]] = deque()  # [start, n, sum, max, min]

    def add(self, ts: float, value: float) -> None:
        """Add one value observed at epoch second `ts`."""
        start = ts - ts % self.width
        b = self.buckets
        if b and b[-1][0] == start:
            last = b[-1]
            last[1] += 1
            last[2] += value
            if value > last[3]:
                last[3] = value
            if value < last[4]:
                last[4] = value
            return
        if not b or start > b[-1][0]:
            b.append([start, 1.0, value, value, value])
            limit = start - self.span
            while b[0][0] <= limit:
                b.popleft()
            return
        if start <= b[-1][0] - self.span:
            return  # older than the window: it no longer counts
        for i in range(len(b) - 1, -1, -1):
            item = b[i]
            if item[0] == start:
                item[1] += 1
                item[2] += value
                item[3] = max(item[3], value)
                item[4] = min(item[4], value)
                return
            if item[0] < start:
                b.insert(i + 1, [start, 1.0, value, value, value])
                return
        b.appendleft([start, 1.0, value, value, value])

    def stats(self, now: float) -> tuple[int, float, float, float]:
        """Return (count, sum, max, min) of the values in (now - span, now]."""
        limit = now - self.span
        n = 0.0
        total = 0.0
        hi = float("-inf")
        lo = float("inf")
        for start, c, s, mx, mn in self.buckets:
            if start > limit and start <= now:
                n += c
                total += s
                if mx > hi:
                    hi = mx
                if mn < lo:
                    lo = mn
        return int(n), total, hi, lo

    def stat(self, name: str, now: float) -> float | None:
        """Return one statistic (mean, max, min, sum, count) over the window ending at `now`; None if empty."""
        n, total, hi, lo = self.stats(now)
        if name == "count":
            return float(n)
        if n == 0:
            return None
        return {"mean": total / n, "sum": total, "max": hi, "min": lo}[name]


def merge_rolling(into: Rolling, other: Rolling) -> None:
    """Add another window of the same span to `into`, bucket by bucket."""
    if not other.buckets:
        return
    if not into.buckets:
        into.buckets.extend([list(b) for b in other.buckets])
        return
    by_start = {b[0]: b for b in into.buckets}
    for start, n, total, hi, lo in other.buckets:
        mine = by_start.get(start)
        if mine is None:
            by_start[start] = [start, n, total, hi, lo]
        else:
            mine[1] += n
            mine[2] += total
            mine[3] = max(mine[3], hi)
            mine[4] = min(mine[4], lo)
    into.buckets = deque(by_start[k] for k in sorted(by_start))
