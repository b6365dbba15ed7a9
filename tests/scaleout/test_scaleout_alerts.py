"""Observations across a rule threshold, sent round robin: one alert at the right level, one case, one situation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from scaleout import city
from scaleout.node import Node

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

# 2.8 mm every 10 minutes for 200 minutes: the 3-hour sum passes 50 mm (rainstorm orange, CMA signal) while
# no hour reaches 20 mm (so the short-heavy-rain rule stays quiet and only the rainstorm rule fires)
STEP_MM, EVERY_MIN, READINGS = 2.8, 10, 21


def readings(gauge: str, end: datetime) -> list[dict[str, Any]]:
    """Return the gauge's readings, oldest first, the last one at `end`."""
    start = end - timedelta(minutes=EVERY_MIN * (READINGS - 1))
    return [{"entity": gauge, "attr": "precipitation", "value": STEP_MM, "unitCode": "MMT",
             "observedAt": (start + timedelta(minutes=EVERY_MIN * k)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            for k in range(READINGS)]


def without_ages(value: Any) -> Any:
    """Drop the members that only say how long ago something happened (they change between two reads)."""
    if isinstance(value, dict):
        return {k: without_ages(v) for k, v in value.items() if k not in ("age_s", "last_observed_s_ago")}
    if isinstance(value, list):
        return [without_ages(v) for v in value]
    return value


def rainstorm_alerts(client: httpx.Client) -> list[dict[str, Any]]:
    """Return the node's rainstorm alerts as one process lists them."""
    r = client.get("/api/v1/alerts", params={"category": "flood.rainstorm"})
    r.raise_for_status()
    alerts: list[dict[str, Any]] = r.json()
    return alerts


def alert_cases(client: httpx.Client) -> list[dict[str, Any]]:
    """Return the cases opened by alerts."""
    r = client.get("/api/v1/cases", params={"channel": "alert"})
    r.raise_for_status()
    cases: list[dict[str, Any]] = r.json()
    return cases


def pipeline_view(node: Node) -> str:
    """Describe what each process's observation pipeline saw of the storm community (for a failure message)."""
    lines = []
    for i in range(3):
        sit = node.at(i).get(f"/api/v1/situation/{city.community(0, 0)}").json()
        rain = sit.get("quantities", {}).get("precipitation", {})
        lines.append(f"p{i + 1}: {sit.get('observations')} observations of {city.community(0, 0)}; "
                     f"precipitation {without_ages(rain)}")
    return "\n".join(lines)


@pytest.mark.timeout(120)
def test_rain_across_the_threshold_raises_one_alert_and_one_case(node: Node) -> None:
    city.build(node)
    city.known_everywhere(node)
    gauge = city.gauge(0, 0)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    served: list[int] = []
    for item in readings(gauge, end):
        r = node.rr.post("/api/v1/observations", json=[item])
        assert r.status_code == 200, f"p{node.which(r) + 1}: {r.status_code} {r.text}"
        assert r.json()["stored"] == 1, r.text
        served.append(node.which(r))
    assert set(served) == set(range(len(node.procs))), served  # every process took some

    try:
        node.wait_all(lambda c: rainstorm_alerts(c) and alert_cases(c), timeout=20,
                      what="a rainstorm alert and its case")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline_view(node)}") from None
    time.sleep(3.0)  # settle: late duplicates (a second owner, a redelivery) would show up by now
    for i in range(3):
        alerts = rainstorm_alerts(node.at(i))
        assert len(alerts) == 1, f"p{i + 1} lists {len(alerts)} rainstorm alerts: " + str(
            [(a["id"], a["warningLevel"], a["status"], a.get("community")) for a in alerts])
        (alert,) = alerts
        assert alert["warningLevel"] == "orange" and alert["status"] in ("raised", "escalated"), alert
        assert alert["community"] == city.community(0, 0), alert
        cases = alert_cases(node.at(i))
        assert len(cases) == 1, f"p{i + 1} lists {len(cases)} alert cases: {cases}"
        assert cases[0]["category"] == "E0505" and cases[0]["place"] == city.cell(0, 0), cases[0]
        full = node.at(i).get(f"/api/v1/cases/{cases[0]['id']}").json()
        assert [s["ref"] for s in full["sources"]] == [alert["id"]], full["sources"]

    for level in ("grid", "community", "district", "city"):
        views = [without_ages(node.at(i).get("/api/v1/situation", params={"level": level}).json())
                 for i in range(3)]
        assert views[0]["places"], f"no {level} in the situation of p1: {views[0]}"
        for i in (1, 2):
            assert views[i] == views[0], f"situation?level={level} differs:\np1 {views[0]}\np{i + 1} {views[i]}"
        if level in ("community", "city"):
            wet = next(p for p in views[0]["places"] if p["place"] in (city.community(0, 0), city.CITY))
            assert wet["quantities"]["precipitation"]["latest"] == STEP_MM, wet
