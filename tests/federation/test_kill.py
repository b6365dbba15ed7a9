"""SIGKILL a community node while it is sending, restart it: nothing it acknowledged is lost or doubled."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fednodes import Node, wait_for

pytestmark = pytest.mark.nats
AREA = "urn:ngsi-ld:Community:k1"


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path, nats_prefix: str) -> None:
    city = Node(tmp_path, "city", "city", nats_prefix)
    comm = Node(tmp_path, "k1", "community", nats_prefix, AREA)
    try:
        city.start()
        comm.start()
        city.wait_ready()
        comm.wait_ready()
        wait_for(lambda: any(n["node"] == "k1" and n.get("registered") for n in city.get("/api/v1/nodes")), 20,
                 "k1's hello")
        acknowledged: list[int] = []
        stop = threading.Event()

        def stream() -> None:  # reports as fast as the node takes them, until it dies
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = comm.http.post("/api/v1/reports", json={"text": "r", "data": {"n": n}}, timeout=5)
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged.append(n)

        sender = threading.Thread(target=stream)
        sender.start()
        wait_for(lambda: len(acknowledged) >= 40, 60, "40 acknowledged reports")
        comm.kill()  # mid-stream: requests in flight, outbox not yet drained
        stop.set()
        sender.join(10)
        directives = [city.post("/api/v1/directives", {"target": AREA, "text": f"d{i}"})["id"] for i in range(5)]
        comm.start()
        comm.wait_ready()
        after = [max(acknowledged) + 1000 + i for i in range(10)]
        for n in after:
            comm.post("/api/v1/reports", {"text": "r", "data": {"n": n}})
        expected = set(acknowledged) | set(after)

        def arrived() -> bool:
            got = {r["data"]["n"] for r in city.get("/api/v1/reports", sender="k1", limit=100000)}
            return expected <= got

        wait_for(arrived, 40, "every acknowledged report at the city")
        time.sleep(0.5)  # let any duplicate show up before counting
        reports = city.get("/api/v1/reports", sender="k1", limit=100000)
        ns = [r["data"]["n"] for r in reports]
        assert len(ns) == len(set(ns)), "a report arrived twice"
        inbox = city.get("/api/v1/federation/inbox", sender="k1", limit=100000)
        assert [m["seq"] for m in inbox] == list(range(1, len(inbox) + 1))
        by_id = {r["id"]: r["data"]["n"] for r in reports}
        order = [by_id[m["id"]] for m in inbox if m["kind"] == "report"]
        assert order == sorted(order)  # in the order the community committed them
        events = Counter(e["data"]["sender"] for e in city.get("/api/v1/events", type="federation.report", limit=10000))
        assert events["k1"] == len(ns)
        wait_for(lambda: {d["id"] for d in comm.get("/api/v1/directives")} >= set(directives), 20,
                 "directives sent while k1 was dead")
        assert Counter(e["data"]["sender"] for e in comm.get("/api/v1/events", type="federation.directive")) == \
            Counter({"city": len(directives)})
    finally:
        city.stop()
        comm.stop()
