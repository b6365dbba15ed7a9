"""Kill -9 of one process under mixed load: nothing acknowledged is lost, nothing is doubled, the survivors take
its partitions and singleton jobs over within seconds, and the ledger holds every committed event.

The load: HTTP observations, NGSI-LD PATCHes, case reports and filing (round robin across the processes) and
MQTT measurements (QoS 1, published to the broker; the node's processes share its named sessions). An MQTT
measurement counts as acknowledged when the broker answered PUBACK: it must then be stored exactly once,
also when the process it was delivered to was killed before it acknowledged it in turn."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as paho
import psycopg
import pytest
from scaleout import city
from scaleout.node import MQTT_HOST, MQTT_PORT, Node, fresh_token, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow]

# 3-process only: a kill -9 whose partitions, singleton jobs and MQTT sessions the surviving processes
# take over, and the counts read from PostgreSQL; one process has no survivor to take anything over.
DEPLOYMENTS = ("3-pg-nats",)

TAKEOVER_S = 10.0
STEP_MM, EVERY_MIN, READINGS = 2.8, 10, 21  # as in test_alerts: the 18th reading crosses rainstorm orange
STORMS = [(0, 0), (2, 0), (0, 2), (2, 2)]  # one rain gauge in each community (m1, m2, m3, m4)
VEHICLES = 4
MQTT_CELLS = [(1, 1), (3, 1), (1, 3), (3, 3)]  # one MQTT device in each community
MQTT_EVERY_S = 0.01  # at most ~100 measurements/s
NODE_OPTIONS = {"mqtt": True}


def iso(t: datetime) -> str:
    """Return a canonical UTC timestamp."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass
class Load:
    """What one load thread sent and what was acknowledged."""

    name: str
    acked: list[Any] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    acked_after_kill: int = 0

    def note(self, what: str) -> None:
        """Count an answer (status code or transport error name)."""
        self.statuses[what] += 1


class Mixed:
    """Four load threads: observations, NGSI-LD writes, case reports and filing through the round-robin client,
    and MQTT measurements through the broker."""

    def __init__(self, node: Node, vehicles: list[str], devices: list[tuple[str, str, str]]) -> None:
        self.node = node
        self.vehicles = vehicles
        self.devices = devices  # (apikey, device id, entity id)
        self.stop = threading.Event()
        self.killed = threading.Event()
        self.obs, self.ngsi, self.cases = Load("observations"), Load("ngsi"), Load("cases")
        self.mqtt = Load("mqtt")
        self.mqtt_sent: list[tuple[str, str]] = []  # (entity, TimeInstant) of every measurement published
        self.mqtt_at_kill = 0  # measurements published when the victim was killed
        self.threads = [threading.Thread(target=self._guard(f), name=f.__name__, daemon=True)
                        for f in (self._observations, self._ngsi_writes, self._case_steps, self._mqtt_measurements)]
        self.errors: list[str] = []
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # reported by the test, not swallowed
                self.errors.append(f"{fn.__name__}: {exc!r}")
        return run

    def _send(self, load: Load, method: str, path: str, **kw: Any) -> httpx.Response | None:
        try:
            r = self.node.rr.request(method, path, timeout=10, **kw)
        except httpx.TransportError as exc:
            load.note(type(exc).__name__)
            return None
        load.note(str(r.status_code))
        return r

    def _ack(self, load: Load, item: Any) -> None:
        load.acked.append(item)
        if self.killed.is_set():
            load.acked_after_kill += 1

    def _observations(self) -> None:
        k = 0
        while not self.stop.is_set():
            when = iso(self.base + timedelta(milliseconds=10 * k))
            batch = [{"entity": city.gauge(i, j), "attr": "relativeHumidity", "value": 50.0, "observedAt": when}
                     for i in range(4) for j in range(4)]
            r = self._send(self.obs, "POST", "/api/v1/observations", json=batch)
            if r is not None and r.status_code == 200 and r.json().get("stored") == len(batch):
                self._ack(self.obs, when)
            k += 1

    def _ngsi_writes(self) -> None:
        k = 0
        while not self.stop.is_set():
            eid = self.vehicles[k % len(self.vehicles)]
            r = self._send(self.ngsi, "PATCH", f"/ngsi-ld/v1/entities/{eid}/attrs",
                           json={"speed": {"type": "Property", "value": k}})
            if r is not None and r.status_code == 204:
                self._ack(self.ngsi, (eid, k))
            k += 1

    def _case_steps(self) -> None:
        k = 0
        while not self.stop.is_set():
            title = f"load-{k}"
            lon, lat = city.centre(k % 4, 3)
            r = self._send(self.cases, "POST", "/api/v1/cases",
                           json={"category": "E9901", "channel": "hotline", "title": title, "lon": lon, "lat": lat,
                                 "description": f"report {k}"}, headers={"x-citybrain-actor": "operator:hotline"})
            if r is not None and r.status_code == 201:
                cid = r.json()["id"]
                f = self._send(self.cases, "POST", f"/api/v1/cases/{cid}/file", json={},
                               headers={"x-citybrain-actor": "supervisor:li"})
                self._ack(self.cases, (title, cid, f is not None and f.status_code == 200))
            k += 1

    def _mqtt_measurements(self) -> None:
        """Publish QoS 1 measurements (each with its own TimeInstant) until stopped; note every PUBACK."""
        acked: dict[int, bool] = {}  # mid → PUBACK with success
        mids: list[int] = []
        lock = threading.Lock()

        def on_publish(client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            with lock:
                acked[mid] = not reason.is_failure
            self.mqtt.note("PUBACK" if not reason.is_failure else f"PUBACK {reason}")
            if self.killed.is_set() and not reason.is_failure:
                self.mqtt.acked_after_kill += 1

        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{fresh_token()}",
                             protocol=paho.MQTTv5)
        client.max_inflight_messages_set(100)
        client.on_publish = on_publish
        client.connect(MQTT_HOST, MQTT_PORT)
        client.loop_start()
        try:
            k = 0
            while not self.stop.is_set():
                apikey, device_id, entity = self.devices[k % len(self.devices)]
                when = iso(self.base + timedelta(milliseconds=10 * k))
                info = client.publish(self.node.mqtt_topic(apikey, device_id),
                                      json.dumps({"h": 50.0, "TimeInstant": when}), qos=1)
                assert info.rc == paho.MQTT_ERR_SUCCESS, info
                mids.append(info.mid)
                self.mqtt_sent.append((entity, when))
                k += 1
                assert k < 65000, "mids would repeat"
                time.sleep(MQTT_EVERY_S)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the broker answers the last ones
                with lock:
                    if len(acked) >= len(mids):
                        break
                time.sleep(0.05)
        finally:
            client.loop_stop()
            client.disconnect()
        with lock:
            self.mqtt.acked = [item for mid, item in zip(mids, self.mqtt_sent, strict=True) if acked.get(mid)]

    def __enter__(self) -> Mixed:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def storm(ij: tuple[int, int], end: datetime) -> list[dict[str, Any]]:
    """Return the rain readings of the gauge in cell ij, oldest first, the last at `end`."""
    start = end - timedelta(minutes=EVERY_MIN * (READINGS - 1))
    return [{"entity": city.gauge(*ij), "attr": "precipitation", "value": STEP_MM, "unitCode": "MMT",
             "observedAt": iso(start + timedelta(minutes=EVERY_MIN * k))} for k in range(READINGS)]


def send_reliably(node: Node, items: list[dict[str, Any]]) -> None:
    """POST observations, retrying on another process until one acknowledges them (a client after a lost answer)."""
    def attempt() -> bool:
        try:
            r = node.rr.post("/api/v1/observations", json=items, timeout=10)
        except httpx.TransportError:
            return False
        return r.status_code == 200 and r.json().get("stored") == len(items)

    wait_for(attempt, 20, f"observations {items[0]['entity']} acknowledged", interval=0.2)


def partition_of(community: str, partitions: int) -> int:
    """Return the pipeline partition of a community (as citybrain.cluster computes it)."""
    return zlib.crc32(community.encode()) % partitions


def survivors_took_over(node: Node, victim: int, jobs: set[str]) -> dict[str, Any] | None:
    """Return the survivors' /-/cluster views if they own every partition once and run every job, else None."""
    views = {p.process_id: node.cluster(p.index) for p in node.live()}
    if any(v is None for v in views.values()):
        return None
    owned = [n for v in views.values() for n in v["owned_partitions"]]  # type: ignore[index]
    running = {j for v in views.values() for j in v["jobs"]}  # type: ignore[index]
    members = {m for v in views.values() for m in v["members"]}  # type: ignore[index]
    victim_id = node.procs[victim].process_id
    if sorted(owned) != list(range(node.partitions)) or not jobs <= running or victim_id in members:
        return None
    if node.mqtt_url and not mqtt_sessions_held(node, views):
        return None
    return views


def rain_view(node: Node) -> str:
    """Describe what each live process's pipeline holds of every storm community (for a failure message)."""
    lines = []
    for p in node.live():
        view = node.cluster(p.index)
        lines.append(f"{p.process_id} owns {view and view['owned_partitions']}")
        for ij in STORMS:
            sit = p.http.get(f"/api/v1/situation/{city.community(*ij)}").json()
            rain = sit.get("quantities", {}).get("precipitation", {})
            lines.append(f"  {city.community(*ij)} (partition {partition_of(city.community(*ij), node.partitions)}): "
                         f"{sit.get('observations')} observations; precipitation "
                         f"{ {k: v for k, v in rain.items() if k != 'age_s'} }")
    return "\n".join(lines)


def balanced(node: Node) -> bool:
    """Tell whether every process sees all three members and every partition has one owner, shared fairly."""
    views = [node.cluster(i) for i in range(len(node.procs))]
    if any(v is None for v in views):
        return False
    share = -(-node.partitions // len(views))
    owned = sorted(n for v in views for n in v["owned_partitions"])  # type: ignore[index]
    return owned == list(range(node.partitions)) and all(
        len(v["owned_partitions"]) <= share and len(v["members"]) == len(views) for v in views) and (  # type: ignore[index]
        not node.mqtt_url or mqtt_sessions_held(node, {str(i): v for i, v in enumerate(views)}))


def db(node: Node, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run a read-only query on the node's schema."""
    with psycopg.connect(node.store, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def provision_devices(node: Node) -> list[tuple[str, str, str]]:
    """Provision one MQTT device per community with `citybrain devices import`; return (apikey, id, entity).

    The command runs as an administrator runs it beside a live node: on the node's store, with no bus of its
    own (so it joins no lease round); the processes find the new devices and entities in the store."""
    apikey = fresh_token("k")
    devices = []
    for i, j in MQTT_CELLS:
        lon, lat = city.centre(i, j)
        device_id = f"mq{i}{j}"
        devices.append({"device_id": device_id, "apikey": apikey, "entity_type": "WeatherObserved",
                        "entity_name": f"urn:ngsi-ld:WeatherObserved:{apikey}-{device_id}", "location": [lon, lat],
                        "attributes": [{"object_id": "h", "name": "relativeHumidity", "type": "Number"}]})
    path = node.workdir / "devices.json"
    path.write_text(json.dumps(devices))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")} | {
        "CITYBRAIN_NODE_ID": node.node_id}
    out = subprocess.run([sys.executable, "-m", "citybrain", "devices", "import", str(path), "--store", node.store],
                         cwd=node.workdir, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"devices import failed: {out.stdout} {out.stderr[-2000:]}"
    return [(d["apikey"], d["device_id"], d["entity_name"]) for d in devices]  # type: ignore[misc]


def mqtt_sessions_held(node: Node, views: dict[str, Any]) -> bool:
    """Tell whether every named MQTT session of the node is connected on exactly one live process."""
    held = [s for v in views.values() for s in v["mqtt"]["connected"]]
    return sorted(held) == sorted(node.mqtt_session_ids())


def ledger_event_ids(node: Node) -> list[str]:
    """Return the event id of every ledger entry, in log order."""
    rows = db(node, "SELECT data FROM docs WHERE collection = 'ledger_bundles' ORDER BY id")
    return [json.loads(e)["id"] for (data,) in rows for e in data["entries"]]


@pytest.mark.timeout(240)
def test_kill_9_under_mixed_load(node: Node) -> None:
    city.build(node)
    city.known_everywhere(node)
    vehicles = [f"urn:ngsi-ld:Vehicle:{fresh_token('load')}" for _ in range(VEHICLES)]
    for eid in vehicles:
        r = node.rr.post("/ngsi-ld/v1/entities", json={"id": eid, "type": "Vehicle",
                                                       "speed": {"type": "Property", "value": -1}})
        assert r.status_code == 201, r.text
    devices = provision_devices(node)

    cluster = node.cluster(0) is not None
    if cluster:
        wait_for(lambda: balanced(node), 20, "the partitions shared by the three processes")
    before = {p.process_id: node.cluster(p.index) for p in node.procs}
    victim, jobs, on_victim = 1, set(), []
    if cluster:  # kill the process whose partitions hold the most storm communities: their state must move
        jobs = {j for v in before.values() for j in v["jobs"]}  # type: ignore[index]
        owned = [set(before[p.process_id]["owned_partitions"]) for p in node.procs]  # type: ignore[index]

        def storms_on(i: int) -> list[tuple[int, int]]:
            return [ij for ij in STORMS if partition_of(city.community(*ij), node.partitions) in owned[i]]

        victim = max(range(3), key=lambda i: (len(storms_on(i)), "ledger" in before[node.procs[i].process_id]["jobs"]))  # type: ignore[index]
        on_victim = storms_on(victim)
    rest = [ij for ij in STORMS if ij not in on_victim]
    # rain that crosses the threshold before the kill (its alert must not be raised again by the new owner) and
    # rain that crosses it after (the new owner must continue from the sums the victim had)
    before_kill, after_kill = on_victim[::2] + rest[::2], on_victim[1::2] + rest[1::2]
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    storms = {ij: storm(ij, end) for ij in STORMS}

    with Mixed(node, vehicles, devices) as load:
        for k in range(READINGS - 2):  # before_kill storms cross the threshold now (reading 18), after_kill not yet
            for ij in before_kill + (after_kill if k < 10 else []):
                send_reliably(node, [storms[ij][k]])
        node.wait_all(lambda c: len([a for a in c.get("/api/v1/alerts", params={"category": "flood.rainstorm"})
                                     .json()]) >= len(before_kill), timeout=15, what="the alerts raised before the kill")
        time.sleep(1.0)
        # the victim hangs for half a second, then dies: MQTT messages the broker delivered to it in that time are
        # certainly unacknowledged when it is killed (the case the broker must resend to the survivors)
        node.procs[victim].signal(signal.SIGSTOP)
        time.sleep(0.5)
        node.kill(victim)
        killed_at = time.monotonic()
        load.killed.set()
        load.mqtt_at_kill = len(load.mqtt_sent)
        views = None
        if cluster:
            views = wait_for(lambda: survivors_took_over(node, victim, jobs), TAKEOVER_S + 5,
                             f"survivors owning all {node.partitions} partitions and jobs {sorted(jobs)}")
        took = time.monotonic() - killed_at
        for k in range(READINGS - 2, READINGS):
            for ij in before_kill:
                send_reliably(node, [storms[ij][k]])
        for k in range(10, READINGS):
            for ij in after_kill:
                send_reliably(node, [storms[ij][k]])
        time.sleep(3.0)  # load keeps running on the survivors
    assert not load.errors, load.errors
    print(f"victim p{victim + 1} (its storm communities {[city.community(*ij) for ij in on_victim]}, MQTT sessions "
          f"{before[node.procs[victim].process_id]['mqtt']['connected']}); takeover in {took:.1f} s; statuses: obs "
          f"{dict(load.obs.statuses)}, ngsi {dict(load.ngsi.statuses)}, cases {dict(load.cases.statuses)}, "
          f"mqtt {dict(load.mqtt.statuses)} of {len(load.mqtt_sent)} published")
    if cluster:
        assert took <= TAKEOVER_S, f"takeover took {took:.1f} s: {views}"
    for part in (load.obs, load.ngsi, load.cases, load.mqtt):
        assert part.acked_after_kill > 0, f"no {part.name} write was acknowledged after the kill: {part.statuses}"
        server_errors = {s: n for s, n in part.statuses.items() if s.startswith("5") or s == "409"}
        assert not server_errors, f"{part.name}: answers {dict(part.statuses)}"

    # 0 acknowledged writes lost -------------------------------------------------------------------
    for i in range(4):
        for j in range(4):
            r = node.rr.get(f"/api/v1/entities/{city.gauge(i, j)}/history",
                            params={"attr": "relativeHumidity", "limit": 100000})
            assert r.status_code == 200, r.text
            stored = {row["observed_at"] for row in r.json()}
            lost = [w for w in load.obs.acked if w not in stored]
            assert not lost, f"{city.gauge(i, j)}: {len(lost)} acknowledged observations missing, e.g. {lost[:5]}"
    for eid in vehicles:
        r = node.rr.get(f"/ngsi-ld/v1/temporal/entities/{eid}", params={"attrs": "speed",
                                                                         "options": "temporalValues"})
        assert r.status_code == 200, r.text
        seen = Counter(v for v, _ in r.json()["speed"]["values"])
        mine = [k for e, k in load.ngsi.acked if e == eid]
        lost = [k for k in mine if k not in seen]
        assert not lost, f"{eid}: {len(lost)} of {len(mine)} acknowledged PATCHes missing, e.g. {lost[:10]}"
        assert not [k for k, n in seen.items() if n > 1], f"{eid}: values recorded twice"
    listed = node.rr.get("/api/v1/cases", params={"channel": "hotline", "limit": 10000}).json()
    by_title = Counter(c["title"] for c in listed)
    for title, cid, filed in load.cases.acked:
        r = node.rr.get(f"/api/v1/cases/{cid}")
        assert r.status_code == 200, f"acknowledged case {title} ({cid}) is missing: {r.status_code}"
        steps = [e["step"] for e in r.json()["timeline"]]
        assert steps.count("intake") == 1 and steps.count("file") <= 1, f"{title}: timeline {steps}"
        assert not filed or steps.count("file") == 1, f"{title}: acknowledged filing missing: {steps}"
    doubled = {t: n for t, n in by_title.items() if t.startswith("load-") and n > 1}
    assert not doubled, f"cases recorded twice: {doubled}"

    # every MQTT measurement the broker acknowledged is stored, once ----------------------------------------
    assert len(load.mqtt.acked) == len(load.mqtt_sent), f"the broker acknowledged {len(load.mqtt.acked)} of " \
        f"{len(load.mqtt_sent)} measurements: {dict(load.mqtt.statuses)}"
    entities = [e for _, _, e in devices]

    def mqtt_rows() -> list[tuple[Any, ...]]:
        return db(node, "SELECT entity_id, observed_at FROM history WHERE name = 'relativeHumidity' "
                        "AND entity_id = ANY(%s)", (entities,))

    with contextlib.suppress(AssertionError):
        wait_for(lambda: len(mqtt_rows()) >= len(load.mqtt.acked), 20, "every acknowledged MQTT measurement stored")
    rows = Counter(mqtt_rows())
    lost = [m for m in load.mqtt.acked if m not in rows]
    assert not lost, (
        f"{len(lost)} of {len(load.mqtt.acked)} acknowledged MQTT measurements missing (published as number "
        f"{[load.mqtt_sent.index(m) for m in lost[:20]]}…; the kill came after {load.mqtt_at_kill}), e.g. {lost[:5]}; "
        f"{len(rows)} rows, e.g. {list(rows)[:3]}; "
        + str({p.process_id: (node.cluster(p.index) or {}).get("mqtt") for p in node.live()}))
    assert not [m for m, n in rows.items() if n > 1], "an MQTT measurement stored twice"
    extra = set(rows) - set(load.mqtt_sent)
    assert not extra, f"{len(extra)} MQTT rows nobody published, e.g. {sorted(extra)[:5]}"
    (letters,), = db(node, "SELECT count(*) FROM deadletters WHERE source LIKE 'mqtt:%%' OR source = 'ingest:mqtt'")
    assert letters == 0, f"{letters} MQTT measurements dead-lettered"
    after = {p.process_id: node.cluster(p.index) for p in node.live()}
    resent = {pid: v["mqtt"]["redelivered"] - before[pid]["mqtt"]["redelivered"]  # type: ignore[index]
              for pid, v in after.items()}
    print(f"MQTT: {len(load.mqtt.acked)} measurements acknowledged by the broker, {len(rows)} stored; resent to the "
          f"survivors after the kill: {resent}")
    assert sum(resent.values()) > 0, "the victim's unacknowledged MQTT messages were not resent to a survivor"

    # 0 duplicated alerts or cases ----------------------------------------------------------------
    time.sleep(2.0)
    alerts = node.rr.get("/api/v1/alerts", params={"category": "flood.rainstorm"}).json()
    per_community = Counter(a["community"] for a in alerts)
    want = {city.community(*ij): 1 for ij in STORMS}
    assert dict(per_community) == want, (
        f"rainstorm alerts per community {dict(per_community)}, want one each {want}: "
        + str([(a["id"], a["community"], a["warningLevel"]) for a in alerts])
        + f"\nvictim p{victim + 1} owned the partitions of {on_victim}; crossing before the kill {before_kill}, "
        f"after it {after_kill}\n" + rain_view(node))
    assert {a["warningLevel"] for a in alerts} == {"orange"}, [(a["community"], a["warningLevel"]) for a in alerts]
    alert_cases = node.rr.get("/api/v1/cases", params={"channel": "alert", "limit": 10000}).json()
    refs: Counter[str] = Counter()
    for c in alert_cases:
        full = node.rr.get(f"/api/v1/cases/{c['id']}").json()
        refs.update(s["ref"] for s in full["sources"])
    rain_ids = {a["id"] for a in alerts}
    assert {r: n for r, n in refs.items() if r in rain_ids} == dict.fromkeys(rain_ids, 1), (
        f"cases per rainstorm alert: {dict(refs)}")
    assert all(n == 1 for n in refs.values()), f"an alert opened several cases: {dict(refs)}"

    # the ledger holds every committed event, once, and verifies --------------------------------------
    def ledger_caught_up() -> bool:
        (count,), = db(node, "SELECT count(*) FROM events")
        return len(ledger_event_ids(node)) >= int(count)

    wait_for(ledger_caught_up, 20, "the ledger to hold every committed event")
    ids = set(r[0] for r in db(node, "SELECT id FROM events"))
    in_ledger = ledger_event_ids(node)
    assert len(in_ledger) == len(set(in_ledger)), "an event is in the ledger twice"
    assert set(in_ledger) == ids, (f"{len(ids - set(in_ledger))} committed events not in the ledger, "
                                   f"{len(set(in_ledger) - ids)} ledger entries of no event")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")} | node.settings_env()
    out = subprocess.run([sys.executable, "-m", "citybrain", "ledger", "verify", "--store", node.store, "--json"],
                         cwd=node.workdir, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"ledger verify failed ({out.returncode}): {out.stdout} {out.stderr[-2000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["entries"] >= len(ids), report

    # the killed process comes back and the partitions are shared again -------------------------------
    node.restart(victim)
    if cluster:
        wait_for(lambda: balanced(node), 20, "the partitions shared by three processes again")
