"""Soak (10 s) ending in SIGTERM under load: flat enough, graceful drain, nothing acknowledged lost."""

from __future__ import annotations

import pytest

from reliability.pressure import soak

pytestmark = pytest.mark.slow


def test_short_soak_then_sigterm_under_load_loses_nothing() -> None:
    r = soak(seconds=6.0, rate=500.0, strict=False)
    assert r.acknowledged > 500, r
    assert "memory_slope_mb_per_min" in r.details and "latency_slope_ms_per_min" in r.details
    assert (r.lost, r.duplicates, r.details["state_mismatches"]) == (0, 0, 0), r
    assert r.ok, r.notes
