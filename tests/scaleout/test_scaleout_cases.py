"""A case through its life with every step on another process; duplicates are found whoever takes the report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from scaleout import city
from scaleout.node import Node

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

SUP, CMD, URBAN = "supervisor:li", "command:wang", "dept:urban:zhao"


@pytest.fixture(scope="module")
def town(node: Node) -> Iterator[Node]:
    """The node with the test city built through its API."""
    city.build(node)
    city.known_everywhere(node)
    yield node


def step(node: Node, i: int, case_id: str, name: str, who: str, **body: Any) -> dict[str, Any]:
    """Run one case step on process i as `who`."""
    r = node.at(i).post(f"/api/v1/cases/{case_id}/{name}", json=body, headers={"x-citybrain-actor": who})
    assert r.status_code == 200, f"{name} on p{i + 1} as {who}: {r.status_code} {r.text}"
    result: dict[str, Any] = r.json()
    return result


def report(node: Node, i: int, category: str, channel: str, ij: tuple[int, int], text: str, who: str,
           nudge: float = 0.0) -> dict[str, Any]:
    """Report a problem at the centre of cell ij (moved east by `nudge` degrees) on process i."""
    lon, lat = city.centre(*ij)
    r = node.at(i).post("/api/v1/cases", json={"category": category, "channel": channel, "lon": lon + nudge,
                                                "lat": lat, "description": text}, headers={"x-citybrain-actor": who})
    assert r.status_code == 201, f"report on p{i + 1}: {r.status_code} {r.text}"
    result: dict[str, Any] = r.json()
    return result


@pytest.mark.timeout(90)
def test_case_filed_dispatched_closed_each_step_on_another_process(town: Node) -> None:
    node = town
    got = report(node, 0, "E9901", "hotline", (2, 2), "杂物堵塞楼道 junk blocks the stairwell", "operator:hotline")
    cid = got["id"]
    assert got["state"] == "intake", got
    plan = [(1, "file", SUP, {"note": "立案"}, "filed"),
            (2, "dispatch", CMD, {"lead": "urban"}, "dispatched"),
            (0, "accept", URBAN, {}, "handling"),
            (1, "feedback", URBAN, {"note": "cleared"}, "feedback"),
            (2, "verify", SUP, {"note": "checked"}, "verified"),
            (0, "close", SUP, {}, "closed")]
    for i, name, who, body, state in plan:
        assert step(node, i, cid, name, who, **body)["state"] == state, f"{name} on p{i + 1}"
    want = ["intake", "file", "dispatch", "accept", "feedback", "verify", "close"]
    for i in range(3):
        r = node.at(i).get(f"/api/v1/cases/{cid}")
        assert r.status_code == 200, r.text
        case = r.json()
        assert case["state"] == "closed" and [e["step"] for e in case["timeline"]] == want, (
            f"p{i + 1}: {case['state']} {[e['step'] for e in case['timeline']]}")
        assert case["departments"] == ["urban"], case["departments"]
    events = node.rr.get("/api/v1/events", params={"type": "command.case.", "limit": 1000}).json()
    mine = [e for e in events if e["data"].get("case") == cid]
    assert len(mine) == len(want), [e["type"] for e in mine]


@pytest.mark.timeout(60)
def test_duplicate_reported_on_another_process_is_found(town: Node) -> None:
    node = town
    text = "路灯不亮 street light out at the corner"
    first = report(node, 1, "C0110", "grid", (1, 1), text, "grid:wu")
    for i in range(3):  # the first report is stored before the others come in
        assert node.at(i).get(f"/api/v1/cases/{first['id']}").status_code == 200
    time.sleep(1.0)
    for i in (2, 0):
        again = report(node, i, "C0110", "grid", (1, 1), "light is out", "grid:zhang", nudge=0.0001)
        found = [d["id"] for d in again.get("duplicates", [])]
        assert first["id"] in found, f"report on p{i + 1} (first on p2): proposed duplicates {again.get('duplicates')}"
