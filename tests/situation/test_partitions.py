"""The observation pipeline in partitions: several processes of one node, one alert, one situation, takeover.

Two CityBrain runtimes in this test process stand for two `citybrain serve` processes: they share one
PostgreSQL schema and one bus (a MemoryBus behind a per-process handle, so that stopping or killing one
"process" ends only its own subscriptions, as on a NATS server; one test runs on real NATS JetStream).
Readings of one community's rain gauge are sent through both processes alternately.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from services import pg_schema_url, require_service

from citybrain.api import create_app
from citybrain.bus import Bus, Handler, Subscription
from citybrain.bus.leases import Leases
from citybrain.bus.memory import MemoryBus
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.rules import RuleFileError
from citybrain.runtime import CityBrain
from citybrain.situation.partitions import CHECKPOINTS, FORMAT, JOURNAL
from citybrain.situation.stats import PlaceState, Quantity, merge_states
from citybrain.situation.view import View
from citybrain.testing import Sensor, TestCity, build

START = datetime(2016, 7, 20, 0, 0, tzinfo=UTC)
# one city, district and subdistrict; eight communities c0..c7 of one cell (c{k}g) and one rain gauge (c{k}w) each
TOWN = TestCity(cols=8, rows=1, k=1, districts=1, city="urn:ngsi-ld:City:t", cell_id="urn:ngsi-ld:Grid:c{n0}g",
                community_id="urn:ngsi-ld:Community:c{n0}", district_id="urn:ngsi-ld:District:d",
                subdistrict_id="urn:ngsi-ld:Subdistrict:s", geometry=False,
                cell_attrs={"population": 5000, "elderly": 800},
                sensors=(Sensor("WeatherObserved", "urn:ngsi-ld:WeatherObserved:c{n0}w"),))
CITY, DISTRICT = TOWN.city, TOWN.district(0)
COMMUNITIES = TOWN.communities()
PARTITIONS = 4


def gauge(community: str) -> str:
    return TOWN.sensor(COMMUNITIES.index(community))


def reading(community: str, k: int, mm: float = 10.0) -> dict[str, Any]:
    """The k-th 15-minute rain reading of the community's gauge."""
    when = START + timedelta(minutes=15 * k)
    return {"entity": gauge(community), "attr": "precipitation", "value": mm,
            "observedAt": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


class ProcessBus(Bus):
    """One process's connection to a shared MemoryBus: closing (or killing) it ends only its subscriptions."""

    def __init__(self, shared: MemoryBus) -> None:
        self.shared = shared
        self.subs: list[Subscription] = []

    async def connect(self) -> None:
        """The shared bus is connected by the test."""

    async def close(self) -> None:
        """End this process's subscriptions (what a disconnect does on a server)."""
        await self.kill()

    async def kill(self) -> None:
        """Drop every subscription of this process without handing anything over."""
        subs, self.subs = self.subs, []
        for sub in subs:
            await sub.unsubscribe()

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None,
                      headers: dict[str, str] | None = None) -> None:
        """Publish on the shared bus."""
        await self.shared.publish(subject, data, msg_id=msg_id, headers=headers)

    async def subscribe(self, subject: str, handler: Handler, *, durable: str | None = None,
                        queue: str | None = None, deliver_all: bool = False) -> Subscription:
        """Subscribe on the shared bus."""
        sub = await self.shared.subscribe(subject, handler, durable=durable, queue=queue, deliver_all=deliver_all)
        self.subs.append(sub)
        return sub

    async def ping(self) -> None:
        """Always reachable."""

    async def leases(self, ttl: float) -> Leases:
        """The node's leases live on the shared bus (like a KV bucket on the server)."""
        return await self.shared.leases(ttl)

    async def drain(self) -> None:
        """Wait until the shared bus has delivered everything."""
        await self.shared.drain()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


async def wait_for(check: Callable[[], bool], within: float = 8.0) -> float:
    """Wait until check() holds; return how long it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def settings(store: str, pid: str, checkpoint: float = 0.2, **more: Any) -> Settings:
    s = Settings(store=store, process_id=pid, partitions=more.pop("partitions", PARTITIONS), lease_ttl=1.5, **more)
    # the journal is on as on NATS: two runtimes on one in-process bus stand for processes on one server
    s.extra.update({"detectors": False, "situation_throttle": 0.1, "pipeline_checkpoint": checkpoint,
                    "pipeline_journal": True})
    return s


async def rainstorm_alerts(rt: CityBrain) -> list[dict[str, Any]]:
    """The node's rainstorm alerts, as stored (every process's writes committed first)."""
    await rt.ports.alerts.outbox.flush()
    return [d.data for d in await rt.store.list_docs("alerts", {"category": "flood.rainstorm"}, limit=1000)]


async def send(rts: list[CityBrain], community: str, ks: Iterable[int]) -> None:
    """Send readings k through the processes in turn (a load balancer's round robin)."""
    for i, k in enumerate(ks):
        report = await rts[i % len(rts)].ports.ingest.submit([reading(community, k)])
        assert report.stored == 1, report


async def settle(bus: MemoryBus | None, rts: list[CityBrain]) -> None:
    """Let every delivery finish and every write commit."""
    for _ in range(2):
        if bus is not None:
            await bus.drain()
        else:
            await asyncio.sleep(0.5)
        for rt in rts:
            await rt.ports.alerts.outbox.flush()
            await rt.ports.risk.outbox.flush()


def without_ages(value: Any) -> Any:
    """Drop the members that say how long ago something happened."""
    if isinstance(value, dict):
        return {k: without_ages(v) for k, v in value.items() if k not in ("age_s", "last_observed_s_ago")}
    if isinstance(value, list):
        return [without_ages(v) for v in value]
    return value


async def situations(rt: CityBrain, community: str) -> list[Any]:
    """What one process answers to the situation routes (the overview of each level, one place, risk)."""
    await rt.ports.pipeline.read_others(0)
    app = create_app(rt, manage_runtime=False)
    out: list[Any] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for level in ("grid", "community", "district", "city"):
            r = await client.get("/api/v1/situation", params={"level": level})
            assert r.status_code == 200, r.text
            out.append(r.json())
        out.append((await client.get(f"/api/v1/situation/{community}")).json())
        out.append((await client.get("/api/v1/risk")).json())
    return without_ages(out)


async def two_processes(store: str, bus: Any, clock: FakeClock, checkpoint: float = 0.2) -> tuple[CityBrain, CityBrain]:
    """Start process a (which builds the city), then b; wait until they share the partitions."""
    a = CityBrain(settings(store, "a", checkpoint), clock=clock, bus=ProcessBus(bus))
    await a.start()
    await build(a, TOWN)
    b = CityBrain(settings(store, "b", checkpoint), clock=clock, bus=ProcessBus(bus))
    await b.start()
    await wait_for(lambda: len(a.cluster.owned) == len(b.cluster.owned) == PARTITIONS // 2)
    await wait_for(lambda: len(a.ports.pipeline.parts) == len(b.ports.pipeline.parts) == PARTITIONS // 2)
    return a, b


def one_red_alert(alerts: list[dict[str, Any]], community: str) -> None:
    """After the takeover the community's one rainstorm alert went on to red (110 mm in 2.5 h).

    The red level itself proves the window moved: the new owner saw only 50 mm of it. Whether the new owner
    escalates the alert raised before the takeover, rather than raising a second one, is up to the alert book
    taking the open alerts of a partition it acquires from the store (`Pipeline.on_acquire`); until it does,
    the second alert is an expected failure, and anything else is a failure."""
    levels = [(x["warningLevel"], x["community"]) for x in sorted(alerts, key=lambda x: (x["dateIssued"], x["id"]))]
    if levels == [("orange", community), ("red", community)]:
        pytest.xfail("the alert book does not take an acquired partition's open alerts from the store yet")
    assert levels == [("red", community)], alerts


def owned_by(rt: CityBrain) -> str:
    """A community whose partition this process owns."""
    return next(c for c in COMMUNITIES if rt.cluster.partition_of(c) in rt.cluster.owned)


# merging ------------------------------------------------------------------------------------------

def test_merged_leaves_equal_one_state_fed_everything() -> None:
    """A place's state merged from its cells' (held by different partitions) equals one state fed every row."""
    windows = {"1h": 3600.0, "3h": 10800.0}
    rng = random.Random(7)
    rows = [(f"s{rng.randrange(12)}", 1_468_972_800.0 + rng.uniform(-900, 4 * 3600), round(rng.uniform(0, 30), 1))
            for _ in range(800)]
    whole = PlaceState("d", "district")
    leaves: dict[str, PlaceState] = {}
    for entity, ts, value in rows:
        leaf = leaves.setdefault(f"g{int(entity[1:]) % 4}", PlaceState(f"g{int(entity[1:]) % 4}", "grid"))
        for state in (whole, leaf):
            q = state.quantities.setdefault("precipitation", Quantity(windows))
            q.add(entity, ts, value)
            state.last_ts = max(state.last_ts, ts)
            state.observations += 1
    merged = merge_states("d", "district", [leaves[k] for k in sorted(leaves)], windows)
    now = max(ts for _, ts, _ in rows)
    a = whole.quantities["precipitation"].summary(now, 7200)
    b = merged.quantities["precipitation"].summary(now, 7200)
    for name in ("1h", "3h"):  # sums merged bucket by bucket: equal up to float addition order
        assert a[name]["n"] == b[name]["n"] and a[name]["max"] == b[name]["max"] and a[name]["min"] == b[name]["min"]
        assert a[name]["mean"] == pytest.approx(b[name]["mean"], abs=1e-9)
    assert {k: v for k, v in a.items() if k not in ("1h", "3h")} == {k: v for k, v in b.items() if k not in ("1h", "3h")}
    assert (merged.observations, merged.last_ts) == (whole.observations, whole.last_ts)


# refusing rules a partition cannot judge ----------------------------------------------------------

DISTRICT_RULE = """rules:
  - id: district-rain
    category: flood.district
    quantity: precipitation
    scope: district
    levels: {blue: {stat: max, window: 1h, above: 5}}
"""


async def test_a_rule_above_community_needs_one_partition(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(DISTRICT_RULE)
    s = settings(str(tmp_path / "a.db"), "solo", partitions=4, bus="memory")
    s.extra["rules_file"] = str(path)
    with pytest.raises(RuleFileError) as err:
        await CityBrain(s, clock=FakeClock("2016-07-20T00:00:00Z")).start()
    assert "district-rain" in str(err.value) and "partitions=1" in str(err.value)
    assert err.value.problems[0]["field"] == "district-rain.scope"
    one = settings(str(tmp_path / "b.db"), "solo", partitions=1, bus="memory")
    one.extra["rules_file"] = str(path)
    rt = CityBrain(one, clock=FakeClock("2016-07-20T00:00:00Z"))
    await rt.start()
    try:
        await build(rt, TOWN)
        signals: list[Any] = []

        async def sink(batch: list[Any]) -> None:
            signals.extend(batch)

        rt.ports.signals.sinks.append(sink)
        for c in COMMUNITIES[:3]:  # three communities, which with partitions > 1 would sit in different partitions
            await rt.ports.ingest.submit([reading(c, 0, 2.0)])
        await rt.ports.ingest.submit([reading(COMMUNITIES[3], 1, 8.0)])
        await rt.bus.drain()  # type: ignore[attr-defined]
        assert [(s.source_id, s.level, s.unit) for s in signals] == [("district-rain", "blue", DISTRICT)]
    finally:
        await rt.stop()


# one process: the state outlives a restart ---------------------------------------------------------

async def test_windows_continue_across_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "c.db")
    community = COMMUNITIES[2]
    rt = CityBrain(settings(store, "solo", bus="memory"), clock=FakeClock("2016-07-20T00:00:00Z"))
    await rt.start()
    try:
        await build(rt, TOWN)
        await send([rt], community, range(6))  # 60 mm in 75 minutes: orange
        await settle(rt.bus, [rt])  # type: ignore[arg-type]
        (alert,) = await rainstorm_alerts(rt)
        assert alert["warningLevel"] == "orange"
    finally:
        await rt.stop()  # releases every partition: the last checkpoint is written
    docs = {d.id: d.data for d in await _docs(store, CHECKPOINTS)}
    n = str(rt.cluster.partition_of(community))
    assert docs[n]["seq"] > 0 and docs[n]["owner"] == "solo" and docs[n]["format"] == FORMAT
    again = CityBrain(settings(store, "solo-2", bus="memory"), clock=FakeClock("2016-07-20T02:00:00Z"))
    await again.start()
    try:
        state = again.ports.situation.summary(community)
        assert state["quantities"]["precipitation"]["sensors"] == 1  # the leaves came back from the checkpoint
        await send([again], community, range(6, 11))  # 50 mm more within the same 3 hours: red
        await settle(again.bus, [again])  # type: ignore[arg-type]
        (alert,) = await rainstorm_alerts(again)
        assert alert["warningLevel"] == "red" and alert["status"] in ("raised", "escalated")
        summary = again.ports.situation.summary(community)["quantities"]["precipitation"]
        assert summary["24h"]["n"] == 11 and summary["24h"]["mean"] == 10.0
    finally:
        await again.stop()


class _Boom:
    """A pickle that runs code when loaded: what someone holding only the database could plant."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (_Boom.target,))

    target = Path("/nonexistent")


@pytest.mark.parametrize("forgery", ["planted", "other-secret", "other-partition"])
async def test_a_checkpoint_that_does_not_verify_is_never_unpickled(tmp_path: Path, forgery: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Checkpoints are pickles: only ones MACed with this node's secret for this partition are loaded."""
    import base64
    import pickle

    from citybrain.store import PutDoc, open_store

    store, community = str(tmp_path / "c.db"), COMMUNITIES[2]
    rt = CityBrain(settings(store, "solo", bus="memory"), clock=FakeClock("2016-07-20T00:00:00Z"))
    await rt.start()
    try:
        await build(rt, TOWN)
        await send([rt], community, range(6))
        await settle(rt.bus, [rt])  # type: ignore[arg-type]
        n = rt.cluster.partition_of(community)
    finally:
        await rt.stop()
    docs = {d.id: d for d in await _docs(store, CHECKPOINTS)}
    doc = docs[str(n)]
    data = dict(doc.data)
    _Boom.target = tmp_path / "pwned"
    if forgery == "planted":  # a crafted pickle with a made-up MAC
        data["state"] = base64.b64encode(zlib.compress(pickle.dumps(_Boom()))).decode()
        data["mac"] = "0" * 64
    elif forgery == "other-partition":  # a genuine checkpoint of another partition copied over this one
        other = next(d for k, d in docs.items() if k != str(n) and d.data.get("seq", 0) >= 0)
        data["state"], data["mac"] = other.data["state"], other.data["mac"]
    raw = open_store(store)
    await raw.open()
    try:
        await raw.apply([PutDoc(CHECKPOINTS, str(n), data, expect_version=doc.version)])
    finally:
        await raw.close()
    more = {"jwt_secret": "another node's secret"} if forgery == "other-secret" else {}
    again = CityBrain(settings(store, "solo-2", bus="memory", **more), clock=FakeClock("2016-07-20T02:00:00Z"))
    if more:  # the node pins its secret: a process with another one does not start at all
        from citybrain.errors import Conflict

        with pytest.raises(Conflict, match="jwt_secret"):
            await again.start()
        with contextlib.suppress(Exception):
            await again.stop()
        return
    await again.start()
    try:
        pipeline = again.ports.pipeline
        assert pipeline.describe()["refused_checkpoints"] == 1
        assert again.ports.situation.summary(community)["quantities"] == {}  # started empty
        assert "checkpoint refused" in caplog.text
    finally:
        await again.stop()
    assert not _Boom.target.exists()


async def _docs(path: str, collection: str) -> list[Any]:
    from citybrain.store import open_store

    store = open_store(path)
    await store.open()
    try:
        return await store.list_docs(collection)
    finally:
        await store.close()


# two processes -------------------------------------------------------------------------------------

@pytest.mark.postgres
async def test_two_processes_one_alert_one_situation_and_a_graceful_handover(pg_url: str) -> None:
    bus = MemoryBus()
    await bus.connect()
    clock = FakeClock("2016-07-20T01:30:00Z")
    a, b = await two_processes(pg_url, bus, clock)
    try:
        community = owned_by(a)
        other = owned_by(b)
        await send([a, b], community, range(6))  # 60 mm within 3 h, sent half through each process
        await send([b, a], other, range(2))
        await settle(bus, [a, b])
        (alert,) = await rainstorm_alerts(a)
        assert alert["warningLevel"] == "orange" and alert["community"] == community
        # both answer alike: each serves its own partitions live and the other's from its snapshot
        for rt in (a, b):
            await rt.ports.pipeline.flush()
        seen_a, seen_b = await situations(a, community), await situations(b, community)
        assert seen_a == seen_b
        city = next(p for p in seen_a[3]["places"] if p["place"] == CITY)
        assert city["quantities"]["precipitation"]["latest"] == 10.0 and seen_a[3]["observations"] == 8
        assert seen_a[4]["quantities"]["precipitation"]["24h"]["n"] == 6
        moved = sorted(a.cluster.owned)
        await a.stop()  # hands its partitions over: last checkpoints written, then the leases released
        await wait_for(lambda: sorted(b.ports.pipeline.parts) == list(range(PARTITIONS)))
        assert b.ports.pipeline.restores >= len(moved)
        await send([b], community, range(6, 11))  # the window goes on from a's checkpoint: 110 mm in 2.5 h
        await settle(bus, [b])
        assert b.ports.situation.summary(community)["quantities"]["precipitation"]["24h"]["n"] == 11
        one_red_alert(await rainstorm_alerts(b), community)
    finally:
        for rt in (a, b):
            with contextlib.suppress(Exception):
                await rt.stop()


@pytest.mark.postgres
async def test_a_killed_process_is_taken_over_within_the_lease(pg_url: str) -> None:
    bus = MemoryBus()
    await bus.connect()
    clock = FakeClock("2016-07-20T01:30:00Z")
    # no checkpoint of a's own partitions before it dies (one a minute): what it handled is in the journal only
    a, b = await two_processes(pg_url, bus, clock, checkpoint=60.0)
    try:
        community = owned_by(a)
        await send([a, b], community, range(6))
        await settle(bus, [a, b])
        (alert,) = await rainstorm_alerts(b)
        assert alert["warningLevel"] == "orange"
        journal = [d.data for d in await b.store.list_docs(JOURNAL, {"partition": a.cluster.partition_of(community)})]
        assert len(journal) == 6  # one entry per acknowledged batch
        await kill(a)
        took = await wait_for(lambda: sorted(b.ports.pipeline.parts) == list(range(PARTITIONS)))
        assert took <= b.cluster.ttl + 2 * b.cluster.tick + 0.5, took
        assert b.ports.pipeline.replayed == 6
        await send([b], community, range(6, 11))
        await settle(bus, [b])
        window = b.ports.situation.summary(community)["quantities"]["precipitation"]["24h"]
        assert window["n"] == 11 and window["mean"] == 10.0  # nothing lost, nothing counted twice
        one_red_alert(await rainstorm_alerts(b), community)
    finally:
        with contextlib.suppress(Exception):
            await b.stop()
        with contextlib.suppress(Exception):
            await a.store.close()


async def kill(rt: CityBrain) -> None:
    """What kill -9 does: leases not renewed, nothing handed over, connections gone."""
    assert rt.cluster._loop is not None
    rt.cluster._loop.cancel()
    for task in list(rt._tasks):
        task.cancel()
    if isinstance(rt.bus, ProcessBus):
        await rt.bus.kill()
    else:
        await rt.bus.close()


@pytest.mark.postgres
@pytest.mark.nats
async def test_on_nats_two_processes_and_a_takeover(pg_url: str) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    token = uuid.uuid4().hex[:10]
    extra = {"bus": "nats://127.0.0.1:4222", "bus_stream": f"PIPE_{token}", "bus_prefix": f"p{token}"}
    clock = FakeClock("2016-07-20T01:30:00Z")
    a = CityBrain(settings(pg_url, "a", 60.0, **extra), clock=clock)
    b = CityBrain(settings(pg_url, "b", 60.0, **extra), clock=clock)
    try:
        await a.start()
        await build(a, TOWN)
        await b.start()
        await wait_for(lambda: len(a.ports.pipeline.parts) == len(b.ports.pipeline.parts) == 2)
        community = owned_by(a)
        await send([a, b], community, range(6))
        await wait_for(lambda: a.ports.pipeline.parts[a.cluster.partition_of(community)].handled >= 6)
        await settle(None, [a, b])
        assert [x["warningLevel"] for x in await rainstorm_alerts(a)] == ["orange"]
        for rt in (a, b):
            await rt.ports.pipeline.flush()
        assert await situations(a, community) == await situations(b, community)
        n = a.cluster.partition_of(community)
        await send([b, a], community, range(6, 8))  # acknowledged, journaled, in no checkpoint
        await wait_for(lambda: a.ports.pipeline.parts[n].handled >= 8)
        await kill(a)
        took = await wait_for(lambda: sorted(b.ports.pipeline.parts) == list(range(PARTITIONS)), within=10)
        assert took <= b.cluster.ttl + 2 * b.cluster.tick + 1.0, took
        assert b.ports.pipeline.replayed == 2
        await send([b], community, range(8, 11))
        await wait_for(lambda: b.ports.pipeline.parts[n].handled >= 3)
        await settle(None, [b])
        assert b.ports.situation.summary(community)["quantities"]["precipitation"]["24h"]["n"] == 11
        one_red_alert(await rainstorm_alerts(b), community)
    finally:
        with contextlib.suppress(Exception):
            await b.stop()
        with contextlib.suppress(Exception):
            await a.store.close()
        cleanup = CityBrain(settings(":memory:", "cleanup", **extra), components=[])
        await cleanup.bus.connect()
        await cleanup.bus.delete_stream()  # type: ignore[attr-defined]
        await cleanup.bus.delete_leases()  # type: ignore[attr-defined]
        await cleanup.bus.close()


def test_checkpoint_blob_is_compressed_pickle() -> None:
    """Checkpoints are zlib-compressed pickles (the module's documented format); a detector state shrinks."""
    import pickle

    from citybrain.detect import default_detector

    det = default_detector()
    for i in range(400):
        det.score(i * 60.0, float(i % 9))
    blob = pickle.dumps({"series": det}, protocol=pickle.HIGHEST_PROTOCOL)
    again = pickle.loads(zlib.decompress(zlib.compress(blob, 1)))["series"]
    assert [again.score(24_000.0 + i, 4.0) for i in range(5)] == [det.score(24_000.0 + i, 4.0) for i in range(5)]
    assert len(zlib.compress(blob, 1)) < len(blob) / 4


def test_view_merges_lazily_and_only_once() -> None:
    from citybrain.model.entity import Entity
    from citybrain.model.places import PlaceIndex

    places = PlaceIndex()
    places.load([Entity(id="C", type="Community"), Entity(id="g1", type="Grid", place="C"),
                 Entity(id="g2", type="Grid", place="C")])
    leaves = {}
    for g, v in (("g1", 1.0), ("g2", 3.0)):
        s = PlaceState(g, "grid")
        s.quantities["pm25"] = Quantity({"1h": 3600.0})
        s.quantities["pm25"].add(f"{g}-s", 100.0, v)
        s.last_ts, s.observations = 100.0, 1
        leaves[g] = s
    view = View(places, leaves, 2, {"1h": 3600.0}, 7200.0)
    community = view.state("C")
    assert community is view.state("C") and community is not None
    assert community.quantities["pm25"].sensors == {"g1-s": (100.0, 1.0), "g2-s": (100.0, 3.0)}
    assert view.state("g1") is leaves["g1"] and view.ids_at("community") == ["C"]
    assert view.summary("C", 100.0)["quantities"]["pm25"]["mean_now"] == 2.0

