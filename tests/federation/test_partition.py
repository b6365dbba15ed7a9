"""One city and three community nodes as separate processes over the real NATS server.

Traffic goes both ways (reports up, directives down, receipts up), one community's link is cut with its
kill switch (POST /api/v1/federation/link {"up": false}: the node closes its NATS connection and keeps
working), traffic continues on both sides, the link is restored, and every message must have been applied
exactly once and in order per sender, with read and done receipts for every directive.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fednodes import Node, wait_for

pytestmark = pytest.mark.nats

AREAS = {f"c{i}": f"urn:ngsi-ld:Community:c{i}" for i in (1, 2, 3)}


def report(node: Node, n: int) -> None:
    """Send report number n from a community."""
    node.post("/api/v1/reports", {"text": f"report {n}", "type": "adhoc", "data": {"n": n}})


def directive(city: Node, target: str, n: int) -> str:
    """Issue directive number n to one community (by its area URN) and return its id."""
    return str(city.post("/api/v1/directives", {"target": AREAS[target], "text": f"d{n}"})["id"])


def applied_in_order(node: Node, sender: str, kind: str) -> list[dict[str, Any]]:
    """Return the messages of a kind a node applied from a sender, in apply order; check seqs 1..n."""
    inbox = node.get("/api/v1/federation/inbox", sender=sender, limit=100000)
    seqs = [m["seq"] for m in inbox]
    assert seqs == list(range(1, len(seqs) + 1)), f"{node.node_id} from {sender}: seqs {seqs}"
    return [m for m in inbox if m["kind"] == kind]


def applied_events(node: Node, type_: str) -> Counter[str]:
    """Count applied-message events in a node's event history per sender (a double apply shows here)."""
    events = node.get("/api/v1/events", type=type_, limit=10000)
    return Counter(e["data"]["sender"] for e in events)


def test_partition_nothing_lost_nothing_twice(tmp_path: Path, nats_prefix: str) -> None:
    city = Node(tmp_path, "city", "city", nats_prefix)
    comms = {n: Node(tmp_path, n, "community", nats_prefix, area) for n, area in AREAS.items()}
    nodes = [city, *comms.values()]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        wait_for(lambda: {n["node"] for n in city.get("/api/v1/nodes") if n.get("registered")} >= set(AREAS), 20,
                 "hellos at the city")
        sent_up: dict[str, int] = Counter()
        sent_down: dict[str, list[str]] = {n: [] for n in comms}

        def traffic(rounds: int) -> None:
            for _ in range(rounds):
                for name, node in comms.items():
                    sent_up[name] += 1
                    report(node, sent_up[name])
                    sent_down[name].append(directive(city, name, len(sent_down[name]) + 1))

        traffic(10)
        cut = comms["c2"]
        assert cut.post("/api/v1/federation/link", {"up": False})["state"] == "cut"
        traffic(15)  # both sides keep working while c2 is offline
        outbox = cut.get("/api/v1/outbox")
        assert outbox["link"] == "cut" and outbox["backlog"].get("up", 0) >= 15
        wait_for(lambda: next(n for n in city.get("/api/v1/nodes") if n["node"] == "c2")["link"]["state"] == "down",
                 10, "the city to see c2's link down")
        assert cut.post("/api/v1/federation/link", {"up": True})["state"] in ("up", "down")
        traffic(10)

        for name, node in comms.items():
            n_up, n_down = sent_up[name], len(sent_down[name])
            wait_for(lambda name=name, n_up=n_up: len(city.get("/api/v1/reports", sender=name)) >= n_up, 30,
                     f"{name}'s reports at the city")
            wait_for(lambda node=node, n_down=n_down: len(node.get("/api/v1/directives")) >= n_down, 30,
                     f"directives at {name}")
            got = applied_in_order(city, name, "report")
            reports = {r["id"]: r["data"]["n"] for r in city.get("/api/v1/reports", sender=name, limit=100000)}
            assert [reports[m["id"]] for m in got] == list(range(1, n_up + 1))  # in order, 0 lost, 0 dup
            down = applied_in_order(node, "city", "directive")
            texts = {d["id"]: d["text"] for d in node.get("/api/v1/directives")}
            by_msg = [texts[did] for did in sent_down[name]]
            assert by_msg == [f"d{i}" for i in range(1, n_down + 1)] and len(down) == n_down

        assert applied_events(city, "federation.report") == sent_up
        for name, node in comms.items():
            assert applied_events(node, "federation.directive") == Counter({"city": len(sent_down[name])})
            for did in sent_down[name]:
                node.post(f"/api/v1/directives/{did}/read")
            for did in sent_down[name][::2]:
                node.post(f"/api/v1/directives/{did}/done")
        for name in comms:
            for i, did in enumerate(sent_down[name]):
                done = i % 2 == 0

                def receipted(did: str = did, name: str = name, done: bool = done) -> bool:
                    state = city.get(f"/api/v1/directives/{did}/receipts")["nodes"][name]
                    return bool(state["read"]) and bool(state["done"]) == done

                wait_for(receipted, 20, f"receipts of {did} from {name}")
        stats = {n: city.get("/api/v1/federation")["receiver"] for n in ("city",)}
        assert stats["city"]["held"] == 0
        waiting = city.get("/api/v1/federation")["kpis"]
        assert waiting["nodes"] == 3 and waiting["directives_waiting"] == sum(len(v) // 2 for v in sent_down.values())
    finally:
        for node in nodes:
            node.stop()
