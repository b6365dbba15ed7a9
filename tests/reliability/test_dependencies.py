"""Dependency faults: a private NATS server restarted under load; health degrades, nothing acknowledged is lost."""

from __future__ import annotations

import pytest
from services import require_executable

from reliability.scenarios import dependencies

pytestmark = pytest.mark.slow


def test_nats_restart_under_load_degrades_health_and_loses_nothing() -> None:
    require_executable("nats-server", "/usr/sbin/nats-server")
    r = dependencies(seconds=1.5, outage=1.5, postgres=False, nats=True, rate=1000)
    assert "nats" in r.details["degraded_reported_after_s"], r.notes
    assert r.recovery_s is not None and r.recovery_s < 30
    assert r.acknowledged > 0
    assert (r.lost, r.duplicates) == (0, 0), r
    assert r.ok, r.notes
