"""Crash: kill -9 during HTTP and MQTT QoS 1 ingest loses nothing acknowledged, and the checker notices loss."""

from __future__ import annotations

import pytest
from services import require_executable

from reliability.scenarios import crash

pytestmark = pytest.mark.slow


def test_kill_9_under_http_and_mqtt_loses_nothing_acknowledged() -> None:
    require_executable("mosquitto", "/usr/sbin/mosquitto")
    r = crash(seconds=2.5, http_rate=1000, mqtt_rate=300, down=1.0)
    assert r.acknowledged > 500, r
    assert (r.lost, r.duplicates, r.details["state_mismatches"]) == (0, 0, 0), r
    assert r.ok, r.notes


def test_checker_reports_loss_when_writes_are_acknowledged_before_commit() -> None:
    r = crash(seconds=1.5, http_rate=1000, mqtt=False, down=0.2, fault="ack-before-commit")
    assert r.acknowledged > 0
    assert r.lost > 0, "a store that acknowledges before committing must lose data on kill -9"
    assert not r.ok
