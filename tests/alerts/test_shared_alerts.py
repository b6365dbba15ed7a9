"""Alerts on a node of two processes (one PostgreSQL schema, one bus): any process acts on any alert.

The alert is raised by the process that owns its community's pipeline partition; acknowledging, escalating,
resolving and suppressing work on either process and show on both, and a pipeline write that overtakes a
command does not undo it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cases.node import Node, nats_ready, pg_url, until
from risk.test_risk import TOWN, ingest, obs  # type: ignore[import-not-found]

from citybrain import testing
from citybrain.alerts.book import AlertBook
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.ports import Ports
from citybrain.runtime import CityBrain
from citybrain.testing import Sensor, build

COMPONENTS = ["citybrain.model.commands", "citybrain.ingest.observations", "citybrain.situation", "citybrain.rules",
              "citybrain.risk", "citybrain.alerts"]
RULES = """rules:
  - id: rain
    name: Rain test
    category: flood.rainstorm
    quantity: precipitation
    levels: {blue: {above: 10}, orange: {above: 30}, red: {above: 60}}
"""


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def url() -> Iterator[str]:
    """A fresh PostgreSQL schema for the node's two processes."""
    yield from pg_url()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """One in-process bus shared by both runtimes, or a NATS server (fresh stream and prefix)."""
    if request.param == "nats":
        nats_ready()
    return str(request.param)


@asynccontextmanager
async def two_processes(tmp_path: Path, url: str, kind: str) -> AsyncIterator[tuple[Node, CityBrain, CityBrain]]:
    """Start process A (it writes the places and sensors), then process B."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def settings() -> Settings:  # short leases: a stopped process's partitions move within a second
        return Settings(lease_ttl=1.0, extra={"rules_file": str(rules), "detectors": False})

    async with Node(url, settings, COMPONENTS, kind, FakeClock("2016-07-20T00:00:00Z")) as node:
        a = await node.start()
        await build(a, replace(TOWN, sensors=(Sensor("WeatherObserved"),)))  # the risk tests' city, rain gauges only
        b = await node.start()
        yield node, a, b


def serve(rt: CityBrain) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """Return an HTTP client of one process (the alert routes)."""
    return testing.serve(rt, ["citybrain.alerts.api"])


def book(rt: CityBrain) -> AlertBook:
    found: AlertBook = rt.ports.alerts
    return found


async def raised(a: CityBrain, b: CityBrain) -> tuple[str, CityBrain, CityBrain]:
    """Wait for the one open alert; return its id, the process that raised it and the other one."""
    async def one() -> bool:
        return len(book(a).open) + len(book(b).open) == 1

    await until(one, what="an alert raised on one process")
    raiser, other = (a, b) if book(a).open else (b, a)
    return next(iter(book(raiser).open.values()))["id"], raiser, other


async def stored(rt: CityBrain, alert_id: str) -> dict[str, Any]:
    doc = await rt.store.get_doc("alerts", alert_id)
    assert doc is not None
    return doc.data


async def test_an_alert_raised_on_one_process_is_handled_on_the_other(tmp_path: Path, url: str,
                                                                     bus_kind: str) -> None:
    async with two_processes(tmp_path, url, bus_kind) as (node, a, b):
        await ingest(a, [obs("WeatherObserved", "mid", "precipitation", 35)])
        alert_id, raiser, other = await raised(a, b)
        async with serve(raiser) as here, serve(other) as there:
            r = await there.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "on it"})
            assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text
            await node.settle()
            assert book(raiser).by_id[alert_id]["status"] == "acknowledged"  # the raising book applied it
            seen = (await here.get("/api/v1/alerts", params={"status": "acknowledged"})).json()
            assert [x["id"] for x in seen] == [alert_id]
            # the pipeline goes on on the raising process: its writes carry the acknowledgement
            await ingest(other, [obs("WeatherObserved", "dense", "precipitation", 70, "2016-07-20T00:10:00Z")])

            async def red() -> bool:
                await book(raiser).outbox.flush()
                return (await stored(raiser, alert_id))["warningLevel"] == "red"

            await until(red, what="the pipeline raising the alert to red")
            assert (await stored(other, alert_id))["status"] == "acknowledged"
            r = await here.post(f"/api/v1/alerts/{alert_id}/escalate", json={"to": "urn:ngsi-ld:Organization:water"})
            assert r.status_code == 200 and r.json()["status"] == "escalated", r.text
            r = await there.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "pumped"})
            assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
            assert (await there.post(f"/api/v1/alerts/{alert_id}/ack")).status_code == 409
            await node.settle()
            assert not book(raiser).open and book(raiser).by_id[alert_id]["status"] == "resolved"
            one = (await here.get(f"/api/v1/alerts/{alert_id}")).json()
            assert [h["status"] for h in one["history"]] == ["raised", "acknowledged", "severity", "escalated",
                                                             "resolved"]
        resolved = await a.store.events(type_prefix="alert.resolved")
        assert len(resolved) == 1  # by the process that resolved it, once
        # a new signal in the community raises a new alert: the resolved one is closed everywhere
        await ingest(a, [obs("WeatherObserved", "sparse", "precipitation", 15, "2016-07-20T00:30:00Z")])
        await until(lambda: _open_elsewhere(a, b, alert_id), what="a new alert")


async def _open_elsewhere(a: CityBrain, b: CityBrain, old: str) -> bool:
    ids = [x["id"] for rt in (a, b) for x in book(rt).open.values()]
    return len(ids) == 1 and ids[0] != old


async def test_a_pipeline_write_that_overtakes_an_acknowledgement_is_written_again(
        tmp_path: Path, url: str, bus_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_processes(tmp_path, url, bus_kind) as (node, a, b):
        await ingest(a, [obs("WeatherObserved", "mid", "precipitation", 35)])
        alert_id, raiser, other = await raised(a, b)
        gate = asyncio.Event()
        apply = book(raiser).apply

        async def late(change: dict[str, Any]) -> None:  # the raising process hears of the command late
            await gate.wait()
            await apply(change)

        monkeypatch.setattr(book(raiser), "apply", late)
        await book(other).run("alert.ack", {"alert_id": alert_id, "note": "seen"}, other.context("operator:li"))
        assert (await stored(other, alert_id))["status"] == "acknowledged"
        await ingest(other, [obs("WeatherObserved", "sparse", "precipitation", 36, "2016-07-20T00:05:00Z")])

        async def overwritten() -> bool:
            await book(raiser).outbox.flush()
            return len((await stored(raiser, alert_id))["members"]) == 2

        await until(overwritten, what="the raising pipeline writing its own copy")
        assert (await stored(raiser, alert_id))["status"] == "raised"  # the command was overtaken ...
        gate.set()
        await node.settle()

        async def again() -> bool:
            await book(raiser).outbox.flush()
            return (await stored(raiser, alert_id))["status"] == "acknowledged"

        await until(again, what="the acknowledgement written again")  # ... and is written again, merged
        doc = await stored(other, alert_id)
        assert len(doc["members"]) == 2 and [h["status"] for h in doc["history"]] == ["raised", "acknowledged"]


async def test_a_maintenance_window_recorded_on_one_process_holds_on_both(tmp_path: Path, url: str,
                                                                         bus_kind: str) -> None:
    async with two_processes(tmp_path, url, bus_kind) as (node, a, b):
        window = await b.execute("alert.suppress", {"target": "urn:ngsi-ld:Grid:sparse",
                                                    "from": "2016-07-20T00:00:00Z", "until": "2016-07-20T06:00:00Z"})
        await node.settle()

        async def everywhere() -> bool:
            return all(any(w["id"] == window["id"] for w in book(rt).suppressions) for rt in (a, b))

        await until(everywhere, what="the window on both processes")
        await ingest(a, [obs("WeatherObserved", "sparse", "precipitation", 50)])

        async def counted() -> bool:
            return book(a).suppressed + book(b).suppressed == 1

        await until(counted, what="the signal counted as suppressed")
        assert book(a).raised + book(b).raised == 0


async def test_open_alerts_move_with_their_partition_when_the_raising_process_stops(tmp_path: Path, url: str,
                                                                                   bus_kind: str) -> None:
    async with two_processes(tmp_path, url, bus_kind) as (node, a, b):
        if not hasattr(a.ports.find(Ports.pipeline), "on_acquire"):
            pytest.skip("this pipeline is not partitioned: every process holds every open alert")
        await ingest(a, [obs("WeatherObserved", "mid", "precipitation", 35)])
        alert_id, raiser, other = await raised(a, b)
        assert alert_id not in book(other).by_id
        await node.stop(raiser)

        async def taken() -> bool:
            return any(x["id"] == alert_id for x in book(other).open.values())

        await until(taken, within=10, what="the surviving process holding the open alert")
        # the pipeline goes on where it stopped: the same alert grows, no second alert is raised
        await ingest(other, [obs("WeatherObserved", "sparse", "precipitation", 36, "2016-07-20T00:05:00Z")])

        async def grown() -> bool:
            await book(other).outbox.flush()
            return len((await stored(other, alert_id))["members"]) == 2

        await until(grown, what="the alert taking its second member")
        assert book(other).raised == 0 and list(book(other).open.values())[0]["id"] == alert_id
        acked = await book(other).run("alert.ack", {"alert_id": alert_id}, other.context("operator:li"))
        assert acked["status"] == "acknowledged" and book(other).by_id[alert_id]["status"] == "acknowledged"
