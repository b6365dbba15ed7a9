"""Kill -9 of the only process of a one-process node on SQLite under mixed load, then a restart on its file.

Nothing acknowledged is lost or doubled (observations, NGSI-LD writes, case steps), the rolling windows come
back whole (a storm half-seen before the crash crosses its threshold after it: one alert per community), and
the ledger holds every committed event once. The processes of a node on NATS are killed in
test_scaleout_failover.py, with survivors taking over; here there is no survivor, so the restarted process
takes its own partitions back from their checkpoints and the pipeline journal."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scaleout import city
from scaleout.node import Node, fresh_token, wait_for
from scaleout.test_scaleout_failover import READINGS, STORMS, Mixed, send_reliably, storm

DEPLOYMENTS = ("1-sqlite",)  # one process killed and restarted (several: test_scaleout_failover.py)


def db(node: Node, sql: str) -> list[tuple[Any, ...]]:
    c = sqlite3.connect(f"file:{node.store}?mode=ro", uri=True, timeout=10)
    try:
        return list(c.execute(sql).fetchall())
    finally:
        c.close()


@pytest.mark.timeout(240)
def test_kill_9_and_restart_of_the_only_process(node: Node) -> None:
    city.build(node)
    city.known_everywhere(node)
    vehicles = [f"urn:ngsi-ld:Vehicle:{fresh_token('load')}" for _ in range(4)]
    for eid in vehicles:
        r = node.rr.post("/ngsi-ld/v1/entities", json={"id": eid, "type": "Vehicle",
                                                       "speed": {"type": "Property", "value": -1}})
        assert r.status_code == 201, r.text
    before_kill, after_kill = STORMS[::2], STORMS[1::2]
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    storms = {ij: storm(ij, end) for ij in STORMS}
    node.rr.next_proc = lambda: node.procs[0]  # type: ignore[method-assign]
    load = Mixed(node, vehicles, [])
    load.threads = load.threads[:3]
    with load:
        for k in range(READINGS - 2):
            for ij in before_kill + (after_kill if k < 10 else []):
                send_reliably(node, [storms[ij][k]])
        node.wait_all(lambda c: len(c.get("/api/v1/alerts", params={"category": "flood.rainstorm"}).json())
                      >= len(before_kill), timeout=15, what="alerts before kill")
        node.kill(0)  # at once: the windows hold readings no checkpoint has covered yet
        load.killed.set()
        node.restart(0)
        for k in range(READINGS - 2, READINGS):
            for ij in before_kill:
                send_reliably(node, [storms[ij][k]])
        for k in range(10, READINGS):
            for ij in after_kill:
                send_reliably(node, [storms[ij][k]])
        time.sleep(3.0)
    assert not load.errors, load.errors
    print({p.name: dict(p.statuses) for p in (load.obs, load.ngsi, load.cases)})
    for part in (load.obs, load.ngsi, load.cases):
        assert part.acked_after_kill > 0, part.statuses
        bad = {s: n for s, n in part.statuses.items() if s.startswith("5") or s == "409"}
        assert not bad, (part.name, dict(part.statuses))
    for i in range(4):
        for j in range(4):
            r = node.rr.get(f"/api/v1/entities/{city.gauge(i, j)}/history",
                            params={"attr": "relativeHumidity", "limit": 100000})
            stored = {row["observed_at"] for row in r.json()}
            lost = [w for w in load.obs.acked if w not in stored]
            assert not lost, (city.gauge(i, j), len(lost), lost[:5])
    for eid in vehicles:
        r = node.rr.get(f"/ngsi-ld/v1/temporal/entities/{eid}", params={"attrs": "speed",
                                                                         "options": "temporalValues"})
        seen = Counter(v for v, _ in r.json()["speed"]["values"])
        mine = [k for e, k in load.ngsi.acked if e == eid]
        lost = [k for k in mine if k not in seen]
        assert not lost, (eid, len(lost), len(mine), lost[:10])
        assert not [k for k, n in seen.items() if n > 1]
    listed = node.rr.get("/api/v1/cases", params={"channel": "hotline", "limit": 10000}).json()
    by_title = Counter(c["title"] for c in listed)
    for title, cid, filed in load.cases.acked:
        r = node.rr.get(f"/api/v1/cases/{cid}")
        assert r.status_code == 200, (title, cid)
        steps = [e["step"] for e in r.json()["timeline"]]
        assert steps.count("intake") == 1 and steps.count("file") <= 1, (title, steps)
        assert not filed or steps.count("file") == 1, (title, steps)
    assert not {t: n for t, n in by_title.items() if t.startswith("load-") and n > 1}
    time.sleep(2.0)
    alerts = node.rr.get("/api/v1/alerts", params={"category": "flood.rainstorm"}).json()
    per = Counter(a["community"] for a in alerts)
    assert dict(per) == {city.community(*ij): 1 for ij in STORMS}, [(a["id"], a["community"], a["warningLevel"], a["status"]) for a in alerts]
    ac = node.rr.get("/api/v1/cases", params={"channel": "alert", "limit": 10000}).json()
    refs: Counter[str] = Counter()
    for c in ac:
        refs.update(s["ref"] for s in node.rr.get(f"/api/v1/cases/{c['id']}").json()["sources"])
    assert all(n == 1 for n in refs.values()), dict(refs)

    def ledger_ids() -> list[str]:
        rows = db(node, "SELECT data FROM docs WHERE collection = 'ledger_bundles' ORDER BY id")
        return [json.loads(e)["id"] if isinstance(e, str) else e["id"] for (data,) in rows
                for e in json.loads(data)["entries"]]

    def caught_up() -> bool:
        (count,), = db(node, "SELECT count(*) FROM events")
        return len(ledger_ids()) >= int(count)

    wait_for(caught_up, 20, "ledger caught up")
    ids = {r[0] for r in db(node, "SELECT id FROM events")}
    led = ledger_ids()
    assert len(led) == len(set(led)), "twice in ledger"
    assert set(led) == ids, (len(ids - set(led)), len(set(led) - ids))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")} | node.settings_env()
    out = subprocess.run([sys.executable, "-m", "citybrain", "ledger", "verify", "--store", node.store, "--json"],
                         cwd=node.workdir, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr[-2000:])
    print(out.stdout.strip().splitlines()[-1])
