"""The login throttle's token buckets: burst, refill, release on success, bounded memory."""

from __future__ import annotations

from citybrain.trust.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_refill() -> None:
    clock = Clock()
    t = LoginThrottle(burst=3, refill_s=6.0, clock=clock)
    keys = ["user:zhao", "addr:10.0.0.1"]
    assert [t.acquire(keys) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = t.acquire(keys)
    assert 5.9 < wait <= 6.0
    clock.now += 6.0
    assert t.acquire(keys) == 0.0 and t.acquire(keys) > 0
    # another address guessing the same account is held off too; another account from a fresh address is not
    assert t.acquire(["user:zhao", "addr:10.0.0.2"]) > 0
    assert t.acquire(["user:li", "addr:10.0.0.2"]) == 0.0


def test_a_right_password_gives_the_attempt_back() -> None:
    t = LoginThrottle(burst=2, refill_s=60.0, clock=Clock())
    keys = ["user:zhao", "addr:a"]
    for _ in range(10):
        assert t.acquire(keys) == 0.0
        t.release(keys)
    assert len(t) == 0  # full buckets are not kept


def test_memory_is_bounded() -> None:
    clock = Clock()
    t = LoginThrottle(burst=1, refill_s=60.0, max_keys=100, clock=clock)
    for i in range(1000):
        t.acquire([f"addr:{i}"])
    assert len(t) <= 100
    assert t.acquire(["addr:999"]) > 0  # the most recent are kept
