"""Deadline escalation happens exactly once per clock and level on a node of three processes, also when the
process that last wrote the case (and ran the deadline checker) is killed. On one process (SQLite) the killed
process is started again on its file and carries on, escalating nothing twice.

Time limits are working or natural hours from the case catalog; to make them seconds the node runs with a
catalog whose traffic-congestion limit is 7.2 s and whose checker runs every second. `citybrain serve` takes
that catalog from settings.extra["cases"]["catalog"], handed to every process as CITYBRAIN_EXTRA (JSON).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scaleout import city
from scaleout.node import Node, wait_for

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

SHIPPED = Path(__file__).resolve().parents[2] / "citybrain" / "cases" / "catalog.yaml"
LIMIT_H, DISPATCH_H, COMMAND_AFTER_H = 0.002, 0.001, 0.002  # 7.2 s, 3.6 s, 7.2 s


def fast_catalog(path: Path) -> Path:
    """Write the shipped catalog with second-long limits for traffic congestion and a checker every second."""
    text = SHIPPED.read_text(encoding="utf-8")
    text, n = re.subn(r"(code: E0701,[^}]*?limit_hours: )1(, clock: natural)", rf"\g<1>{LIMIT_H}\g<2>", text)
    assert n == 1, "the shipped catalog no longer has E0701 with limit_hours: 1, clock: natural"
    for key, value in (("dispatch_hours", DISPATCH_H), ("warn_fraction", 0.5), ("head_after_hours", 0),
                       ("command_after_hours", COMMAND_AFTER_H), ("check_seconds", 1)):
        text, n = re.subn(rf"(?m)^(  {key}: )[0-9.]+", rf"\g<1>{value}", text)
        assert n == 1, key
    path.write_text(text, encoding="utf-8")
    return path




def node_options(workdir: Path) -> dict[str, Any]:
    """Hand every process the fast catalog (conftest calls this with the node's working directory)."""
    catalog = fast_catalog(workdir / "catalog.yaml")
    return {"env": {"CITYBRAIN_EXTRA": json.dumps({"cases": {"catalog": str(catalog)}})}}


@pytest.fixture(scope="module")
def town(node: Node) -> Iterator[Node]:
    """The node with the test city, every process running the fast catalog."""
    policies = [node.at(i).get("/api/v1/cases/catalog").json()["deadlines"] for i in range(3)]
    assert all(p["check_seconds"] == 1 for p in policies), (
        "the processes do not run the fast catalog handed over as CITYBRAIN_EXTRA (settings.extra cannot be set "
        f"for `citybrain serve` from outside); deadline policies: {policies}")
    city.build(node)
    city.known_everywhere(node)
    yield node


def report(node: Node, i: int, ij: tuple[int, int], text: str) -> str:
    """Report traffic congestion from a grid worker on process i (filed and dispatched at once)."""
    lon, lat = city.centre(*ij)
    r = node.at(i).post("/api/v1/cases", json={"category": "E0701", "channel": "grid", "lon": lon, "lat": lat,
                                                "description": text}, headers={"x-citybrain-actor": "grid:wu"})
    assert r.status_code == 201, r.text
    got: dict[str, Any] = r.json()
    assert got["state"] == "dispatched", got
    return str(got["id"])


def escalations(case: dict[str, Any]) -> list[tuple[str | None, int]]:
    """Return (task id or None for the case clock, level) of every escalation in the timeline."""
    return [(e.get("task"), int(e["level"])) for e in case["timeline"] if e["step"] == "escalate"]


def fully_escalated(case: dict[str, Any]) -> bool:
    """Tell whether the case clock and every task reached level 2 (the command centre)."""
    return case.get("escalation") == 2 and all(t.get("escalation") == 2 for t in case["tasks"])


@pytest.mark.timeout(120)
def test_escalation_exactly_once_even_when_the_last_writer_dies(town: Node) -> None:
    node = town
    views = [node.cluster(i) for i in range(3)]
    holder = next((i for i, v in enumerate(views) if v and "cases-deadlines" in v["jobs"]), 0)
    other = (holder + 1) % 3
    doomed = report(node, holder, (0, 3), "堵车 jam at the ring road")  # its last writer runs the checker too
    kept = report(node, other, (3, 0), "堵车 jam at the bridge")
    node.kill(holder)
    started = time.monotonic()
    if len(node.procs) == 1:  # no survivor: the one process comes back on its SQLite file and carries on
        node.restart(holder)

    def done() -> list[dict[str, Any]]:
        cases = [node.rr.get(f"/api/v1/cases/{cid}").json() for cid in (doomed, kept)]
        return cases if all(fully_escalated(c) for c in cases) else []

    wait_for(done, 60, "both cases escalated to the command centre (case clock and both tasks)", interval=0.5)
    took = time.monotonic() - started
    time.sleep(3.0)  # three more checker rounds: nothing may be escalated again
    for cid in (doomed, kept):
        case = node.rr.get(f"/api/v1/cases/{cid}").json()
        steps = escalations(case)
        per_clock: dict[str | None, list[int]] = {}
        for task, level in steps:
            per_clock.setdefault(task, []).append(level)
        clocks = {None, *(t["id"] for t in case["tasks"])}
        assert set(per_clock) == clocks, f"{cid}: escalated clocks {per_clock}, want {clocks}"
        for clock, levels in per_clock.items():
            assert levels == sorted(set(levels)) and levels[-1] == 2, f"{cid} clock {clock}: escalations {levels}"
        warns = Counter(e.get("task") for e in case["timeline"] if e["step"] == "warn")
        assert all(n == 1 for n in warns.values()), f"{cid}: warnings per clock {dict(warns)}"
        events = node.rr.get("/api/v1/events", params={"type": "command.case.escalate", "limit": 1000}).json()
        mine = [e for e in events if e["data"].get("case") == cid]
        assert len(mine) == len(steps), f"{cid}: {len(mine)} escalate events for {len(steps)} timeline steps"
    print(f"escalated within {took:.1f} s of killing p{holder + 1}")
