"""Directives down and reports up exactly once between a city node of three processes and a community node,
also when the city process that runs the federation sender or receiver is killed with SIGKILL.

The city is the module's node (three `citybrain serve` processes on one PostgreSQL schema and one JetStream);
every request to it goes round robin. The community is a node of its own (one `citybrain serve` process, its
own schema and stream) linked to the same NATS server. Both use a federation prefix of this module only, so
the federation stream `<PREFIX>_FED` is the module's and is deleted afterwards. The city runs the shipped
lease TTL (6 s), so the takeover times measured here are the ones a deployment gets.

Exactly once is judged on what the nodes stored, not on HTTP answers: the city's report documents, its inbox
records and its `federation.report` events; the community's directive documents, inbox records and
`federation.directive` events; the city's receipt events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from scaleout import city as town
from scaleout.node import NATS_URL, Node, fresh_token, wait_for
from services import pg_schema_url

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow]

# 3-process only: federation between a city node of three processes (the sender or receiver process killed,
# the others taking over) and a community node, which also gets a PostgreSQL schema and a stream of its own.
DEPLOYMENTS = ("3-pg-nats",)

PREFIX = fresh_token("fed")  # federation subjects <PREFIX>.up.> / <PREFIX>.down.>, stream <PREFIX>_FED
AREA = "urn:ngsi-ld:Community:m1"  # a community of the test city (scaleout/city.py), in district d1
DISTRICT = "urn:ngsi-ld:District:d1"
LOWER = fresh_token("k")  # the community node's id
JOBS = ("federation-receiver", "federation-sender")
TAKEOVER_S = 10.0
NODE_OPTIONS = {"lease_ttl": 6.0, "env": {"CITYBRAIN_ROLE": "city", "CITYBRAIN_FEDERATION_PREFIX": PREFIX}}


async def _delete_stream(name: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    try:
        try:
            await nc.jetstream().delete_stream(name)
        except NotFoundError:
            pass
    finally:
        await nc.close()


async def _published(stream: str, subject: str) -> list[dict[str, Any]]:
    """Return every message a node's JetStream stream holds on a subject (an ephemeral consumer, no acks)."""
    import nats
    import nats.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    try:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30)
        sub = await nc.jetstream().pull_subscribe(subject, stream=stream, config=config)
        out: list[dict[str, Any]] = []
        while True:
            try:
                msgs = await sub.fetch(batch=1000, timeout=1)
            except nats.errors.TimeoutError:
                break
            out += [orjson.loads(m.data) for m in msgs]
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def on_the_bus(node: Node, type_: str) -> Counter[str]:
    """Count the `type_` events on the node's bus by the federation message they are about (the node's
    followers act on these: a message applied once must be announced once)."""
    events = asyncio.run(_published(node.stream, f"{node.prefix}.event.{type_}"))
    return Counter(e["data"]["message"] for e in events if e["type"] == type_)


@pytest.fixture(scope="module")
def lower(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The community node (one process) below the city, linked once every city process knows it."""
    from citybrain.federation.messages import stream_name

    env = {"CITYBRAIN_ROLE": "community", "CITYBRAIN_AREA": AREA, "CITYBRAIN_PARENT": NATS_URL,
           "CITYBRAIN_FEDERATION_PREFIX": PREFIX}
    try:
        for store in pg_schema_url():
            community = Node(tmp_path_factory.mktemp("lower"), store, node_id=LOWER, env=env)
            try:
                community.start(1)
                yield community
            finally:
                community.close()
    finally:
        asyncio.run(_delete_stream(stream_name(PREFIX)))


@pytest.fixture(scope="module")
def pair(node: Node, lower: Node) -> Iterator[tuple[Node, Node]]:
    """The test city and its community node, once every city process knows the city's places and lists the
    community (its hello arrived, on one process, and is shared)."""
    town.build(node)
    town.known_everywhere(node)

    def knows(client: httpx.Client) -> bool:
        nodes = {n["node"]: n for n in get(client, "/api/v1/nodes")}
        assert LOWER in nodes, f"the community is not among the nodes {sorted(nodes)}"
        assert nodes[LOWER]["area"] == AREA and nodes[LOWER]["registered"], nodes[LOWER]
        return True

    node.wait_all(knows, timeout=20, what=f"the community {LOWER} in GET /api/v1/nodes")
    yield node, lower


def get(client: httpx.Client | Any, path: str, **params: Any) -> Any:
    """GET a JSON resource, failing on an error answer."""
    r = client.get(path, params=params)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
    return r.json()


def events(client: httpx.Client | Any, type_: str) -> list[dict[str, Any]]:
    """Return every stored event of exactly this type (the API filters by prefix)."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = get(client, "/api/v1/events", type=type_, after=after, limit=10000)
        out += [e for e in page if e["type"] == type_]
        if len(page) < 10000:
            return out
        after = page[-1]["seq"]


def holders(node: Node) -> dict[str, int]:
    """Return which live process runs each singleton job (from GET /-/cluster)."""
    out: dict[str, int] = {}
    for p in node.live():
        view = node.cluster(p.index)
        assert view is not None, "GET /-/cluster is missing"
        for job in view["jobs"]:
            assert job not in out, f"job {job} runs on p{out[job] + 1} and {p.process_id}"
            out[job] = p.index
    return out


def report_ns(client: httpx.Client | Any, sender: str | None = None) -> list[int]:
    """Return the test number of every stored report (city: received from the community; community: its own)."""
    params = {"sender": sender} if sender else {}
    return [int(r["data"]["n"]) for r in get(client, "/api/v1/reports", limit=100000, **params)]


def issue(node: Node, n: int) -> tuple[httpx.Response, str]:
    """Issue directive number n on the next city process, to the community's area, its node id or its district
    by turns."""
    target = (AREA, LOWER, DISTRICT)[n % 3]
    r = node.rr.post("/api/v1/directives", json={"target": target, "text": f"directive {n}: 清理雨水口"}, timeout=10)
    return r, target


def exactly_once(city: Node, community: Node, receipts: int | None = None) -> dict[str, int]:
    """Check that every report the community stored is at the city once and every directive the city stored is at
    the community once, in sender order; return the counts."""
    sent_reports = report_ns(community.at(0))
    assert len(sent_reports) == len(set(sent_reports)), "the community stored a report twice"
    got = report_ns(city.rr, LOWER)
    twice = sorted(n for n, k in Counter(got).items() if k > 1)
    assert not twice, f"reports stored twice at the city: {twice[:10]}"
    assert sorted(got) == sorted(sent_reports), (
        f"missing at the city: {sorted(set(sent_reports) - set(got))[:10]}; "
        f"unknown: {sorted(set(got) - set(sent_reports))[:10]}")
    report_events = Counter(e["data"]["message"] for e in events(city.rr, "federation.report"))
    assert all(k == 1 for k in report_events.values()), "a report was applied twice (federation.report events)"
    assert len(report_events) == len(got), f"{len(report_events)} federation.report events for {len(got)} reports"

    up = get(city.rr, "/api/v1/federation/inbox", sender=LOWER, limit=100000)
    seqs = [m["seq"] for m in up]
    assert seqs == list(range(1, len(up) + 1)), f"city inbox from the community, in apply order: {seqs[:40]}"
    assert len({m["id"] for m in up}) == len(up)

    issued = {d["id"]: d for d in get(city.rr, "/api/v1/directives", limit=100000)}
    assert all(d["nodes"] == [LOWER] for d in issued.values())
    kept = get(community.at(0), "/api/v1/directives", limit=100000)
    assert sorted(d["id"] for d in kept) == sorted(issued), (
        f"missing at the community: {sorted(set(issued) - {d['id'] for d in kept})[:5]}")
    applied = Counter(e["data"]["payload"]["id"] for e in events(community.at(0), "federation.directive"))
    assert applied == Counter(dict.fromkeys(issued, 1)), (
        f"directives applied other than once: {[(k, v) for k, v in applied.items() if v != 1][:5]}")
    issue_events = events(city.rr, "command.directive.issue")
    assert len(issue_events) == len(issued), f"{len(issue_events)} issue events for {len(issued)} directives"

    down = get(community.at(0), "/api/v1/federation/inbox", sender=city.node_id, limit=100000)
    seqs = [m["seq"] for m in down]
    assert seqs == list(range(1, len(down) + 1)), f"community inbox from the city, in apply order: {seqs[:40]}"
    assert sum(1 for m in down if m["kind"] == "directive") == len(issued)

    if receipts is not None:
        got_receipts = Counter(e["data"]["message"] for e in events(city.rr, "federation.directive.receipt"))
        assert all(k == 1 for k in got_receipts.values()) and len(got_receipts) == receipts, (
            f"{len(got_receipts)} receipts at the city ({sum(got_receipts.values())} applications), want {receipts}")
    return {"reports": len(got), "directives": len(issued), "up": len(up), "down": len(down)}


@pytest.mark.timeout(60)
def test_reports_up_and_directives_down_exactly_once(pair: tuple[Node, Node]) -> None:
    city, community = pair
    for n in range(1, 21):
        r = community.rr.post("/api/v1/reports", json={"text": f"report {n}", "data": {"n": n}})
        assert r.status_code == 201, r.text
    directives: dict[str, int] = {}
    answered = set()
    for n in range(1, 13):
        r, target = issue(city, n)
        assert r.status_code == 201, f"directive {n} to {target} on p{city.which(r) + 1}: {r.status_code} {r.text}"
        directives[r.json()["id"]] = n
        answered.add(city.which(r))
    assert answered == {0, 1, 2}

    wait_for(lambda: set(report_ns(city.rr, LOWER)) >= set(range(1, 21)), 15, "20 reports at the city")
    wait_for(lambda: {d["id"] for d in get(community.at(0), "/api/v1/directives")} >= set(directives), 15,
             "12 directives at the community")
    for directive_id in directives:  # done implies read: two receipts up per directive
        r = community.rr.post(f"/api/v1/directives/{directive_id}/done", json={"note": "已清理"})
        assert r.status_code == 200, r.text

    def all_done(client: httpx.Client) -> bool:
        for directive_id in directives:
            state = get(client, f"/api/v1/directives/{directive_id}/receipts")
            assert state["done"] == 1 and state["nodes"][LOWER]["read"], f"{directive_id}: {state}"
        return True

    city.wait_all(all_done, timeout=15, what="read and done receipts of every directive")
    counts = exactly_once(city, community, receipts=2 * len(directives))
    assert counts["reports"] == 20 and counts["directives"] == 12, counts


@pytest.mark.timeout(60)
def test_mode_switch_reaches_the_community_once(pair: tuple[Node, Node]) -> None:
    city, community = pair
    r = city.rr.post("/api/v1/modes", json={"area": AREA, "mode": "emergency", "level": "IV", "reason": "暴雨 rainstorm"})
    assert r.status_code == 201 and r.json()["broadcast"] == 1, r.text
    wait_for(lambda: get(community.at(0), "/api/v1/federation")["config"]["mode"] == "emergency", 15,
             "the emergency at the community")
    r = city.rr.post("/api/v1/modes/revert", json={"area": AREA, "reason": "雨停 rain stopped"})
    assert r.status_code == 200 and r.json()["broadcast"] == 1, r.text
    wait_for(lambda: get(community.at(0), "/api/v1/federation")["config"]["mode"] == "normal", 15,
             "the end of the emergency at the community")
    down = get(community.at(0), "/api/v1/federation/inbox", sender=city.node_id, limit=100000)
    switches = [m for m in down if m["kind"].startswith("mode.")]
    assert len(switches) == 2 and not any(m.get("failed") for m in switches), switches
    dead = [d for d in get(community.at(0), "/api/v1/deadletters") if d["source"].startswith("federation:")]
    assert not dead, dead


class Traffic:
    """Reports into the community and directives into the city (round robin) from two threads, until stopped."""

    def __init__(self, city: Node, community: Node) -> None:
        self.city, self.community = city, community
        self.stop = threading.Event()
        self.reports: list[tuple[float, int]] = []  # (monotonic time of the 201, report number)
        self.directives: list[tuple[float, str]] = []  # (monotonic time of the 201, directive id)
        self.failed: Counter[str] = Counter()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._guard(f), daemon=True) for f in (self._up, self._down)]

    def _guard(self, fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # reported by the test
                self.errors.append(f"{fn.__name__}: {exc!r}")
        return run

    def _up(self) -> None:
        n = 1000
        while not self.stop.is_set():
            n += 1
            try:
                r = self.community.rr.post("/api/v1/reports", json={"text": f"report {n}", "data": {"n": n}},
                                           timeout=10)
            except httpx.TransportError as exc:
                self.failed[f"report {type(exc).__name__}"] += 1
                continue
            if r.status_code == 201:
                self.reports.append((time.monotonic(), n))
            else:
                self.failed[f"report {r.status_code}"] += 1
            time.sleep(0.02)

    def _down(self) -> None:
        n = 1000
        while not self.stop.is_set():
            n += 1
            try:
                r, _ = issue(self.city, n)
            except httpx.TransportError as exc:  # the killed process, or one still starting
                self.failed[f"directive {type(exc).__name__}"] += 1
                continue
            if r.status_code == 201:
                self.directives.append((time.monotonic(), r.json()["id"]))
            else:
                self.failed[f"directive {r.status_code} {r.text[:120]}"] += 1
            time.sleep(0.05)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def first_after(items: list[tuple[float, Any]], t0: float, timeout: float = 10.0) -> Any:
    """Return the first item acknowledged after t0 (waiting for one)."""
    return wait_for(lambda: next((x for t, x in list(items) if t > t0), None), timeout, "a write acknowledged after "
                    "the kill")


def kill_round(city: Node, community: Node, traffic: Traffic, job: str) -> tuple[set[str], str]:
    """Kill -9 the city process running `job` under traffic; check that the survivors take its federation jobs
    over and messages flow again within TAKEOVER_S; restart it. Return the jobs it ran and what happened."""
    held = holders(city)
    assert set(JOBS) <= set(held), f"jobs running: {held}"
    victim = held[job]
    jobs = {j for j, i in held.items() if i == victim and j.startswith("federation-")}
    time.sleep(0.5)  # messages in flight both ways when the kill lands
    t0 = time.monotonic()
    city.kill(victim)

    def taken_over() -> dict[str, int] | None:
        now = holders(city)
        return now if jobs <= set(now) else None

    now_held = wait_for(taken_over, TAKEOVER_S + 5, f"survivors running {sorted(jobs)}", interval=0.1)
    took = time.monotonic() - t0
    flows = []
    if "federation-receiver" in jobs:  # reports go on arriving at the city
        n = first_after(traffic.reports, t0)
        wait_for(lambda: n in report_ns(city.rr, LOWER), TAKEOVER_S + 5, f"report {n} at the city", interval=0.2)
        flows.append(f"reports flow again after {time.monotonic() - t0:.1f} s")
    if "federation-sender" in jobs:  # directives go on arriving at the community
        d = first_after(traffic.directives, t0)
        wait_for(lambda: d in {x["id"] for x in get(community.at(0), "/api/v1/directives", limit=100000)},
                 TAKEOVER_S + 5, f"directive {d} at the community", interval=0.2)
        flows.append(f"directives flow again after {time.monotonic() - t0:.1f} s")
    resumed = time.monotonic() - t0
    said = (f"killed p{victim + 1} running {sorted(jobs)}: taken over by "
            f"{ {j: f'p{now_held[j] + 1}' for j in sorted(jobs)} } after {took:.1f} s; " + "; ".join(flows))
    assert took <= TAKEOVER_S and resumed <= TAKEOVER_S, said
    city.restart(victim)
    return jobs, said


@pytest.mark.timeout(90)
def test_exactly_once_when_the_sender_or_receiver_process_is_killed(pair: tuple[Node, Node]) -> None:
    city, community = pair
    rounds: list[str] = []
    covered: set[str] = set()
    with Traffic(city, community) as traffic:
        wait_for(lambda: len(traffic.reports) >= 20 and len(traffic.directives) >= 8, 20, "traffic both ways")
        for job in JOBS:  # one kill when one process runs both, else one per holder
            if job not in covered:
                jobs, said = kill_round(city, community, traffic, job)
                covered |= jobs
                rounds.append(said)
        time.sleep(1.0)
    assert not traffic.errors, traffic.errors
    acked_reports = {n for _, n in traffic.reports}
    acked_directives = {d for _, d in traffic.directives}

    def converged() -> bool:
        at_city = set(report_ns(city.rr, LOWER))
        at_community = {d["id"] for d in get(community.at(0), "/api/v1/directives", limit=100000)}
        issued = {d["id"] for d in get(city.rr, "/api/v1/directives", limit=100000)}
        return acked_reports <= at_city and acked_directives <= at_community and issued <= at_community

    wait_for(converged, 20, "every acknowledged report at the city and every issued directive at the community",
             interval=0.3)
    time.sleep(4.0)  # a duplicate, if any, has time to land before counting (the event relay sends after 3 s)
    counts = exactly_once(city, community)
    for type_, want in (("federation.report", counts["reports"]), ("federation.node.hello", None),
                        ("federation.directive.receipt", None)):
        announced = on_the_bus(city, type_)
        twice = {m: k for m, k in announced.items() if k > 1}
        assert not twice, f"{len(twice)} of {len(announced)} {type_} events on the city's bus more than once"
        assert want is None or len(announced) == want, f"{len(announced)} {type_} events on the bus for {want}"
    announced = on_the_bus(community, "federation.directive")
    assert len(announced) == counts["directives"] and set(announced.values()) == {1}, (
        f"{sum(announced.values())} federation.directive events on the community's bus for {counts['directives']}")
    print("\n".join(rounds))
    print(f"{len(acked_reports)} reports and {len(acked_directives)} directives acknowledged under the kills; "
          f"totals {counts}; failed requests {dict(traffic.failed)}")

