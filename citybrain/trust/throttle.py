"""Throttling of password logins: a token bucket per account and per client address.

Each password attempt takes one token from the bucket of the account it names and one from the bucket of
the address it comes from; a successful login gives them back. A bucket holds `burst` tokens and regains
one every `refill_s` seconds, so with the defaults (10, 6 s) an address or an account gets 10 wrong
passwords at once and then one every 6 s (10 a minute). An attempt that finds either bucket empty is
refused with 429 and Retry-After *before* its password is hashed, so a flood costs no scrypt work.

The state is in memory, per process: a node of N processes allows up to N x the limit (each process counts
the attempts it answered). At most `max_keys` buckets are kept; full buckets are dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    """Token buckets of password attempts, keyed by 'user:<name>' and 'addr:<address>'."""

    def __init__(self, burst: int, refill_s: float, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = max(1, int(burst))
        self.refill_s = max(0.001, float(refill_s))
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, as of)

    def _level(self, key: str, now: float) -> float:
        got = self._buckets.get(key)
        if got is None:
            return float(self.burst)
        tokens, stamp = got
        return min(float(self.burst), tokens + max(0.0, now - stamp) / self.refill_s)

    def wait(self, keys: list[str]) -> float:
        """Return 0.0 if an attempt would be granted now, else the seconds to wait (nothing is taken)."""
        now = self.clock()
        return max((1.0 - self._level(k, now)) * self.refill_s for k in keys)

    def acquire(self, keys: list[str]) -> float:
        """Take one attempt from every key's bucket: 0.0 if granted, else the seconds to wait (nothing taken)."""
        now = self.clock()
        levels = [self._level(k, now) for k in keys]
        wait = max((1.0 - lv) * self.refill_s for lv in levels)
        if wait > 0:
            return wait
        for key, level in zip(keys, levels, strict=True):
            self._buckets[key] = (level - 1.0, now)
            self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return 0.0

    def release(self, keys: list[str]) -> None:
        """Give an attempt back (the password was right)."""
        now = self.clock()
        for key in keys:
            if key in self._buckets:
                level = self._level(key, now) + 1.0
                if level >= self.burst:
                    del self._buckets[key]
                else:
                    self._buckets[key] = (level, now)

    def _prune(self, now: float) -> None:
        for key in [k for k in self._buckets if self._level(k, now) >= self.burst]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # the least recently used

    def __len__(self) -> int:
        return len(self._buckets)
