"""Cases on a node of two processes (one PostgreSQL schema, one bus): any process steps any case.

A case stepped on one process is stepped on the other without a 409; a stale cached copy costs one retry,
never a lost update; duplicates are found whichever process the first report came to; the deadline checker
escalates once when both processes sweep at once, and also when the process that wrote the case last is gone.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cases.casecity import COMPONENTS, EXTENSIONS, START, actor, build_city, centre, settings
from cases.node import Node, nats_ready, pg_url
from test_case_lifecycle import get, report, step

from citybrain import testing
from citybrain.cases import check_deadlines
from citybrain.cases.desk import CaseDesk
from citybrain.clock import FakeClock
from citybrain.runtime import CityBrain

SUP, CMD = "supervisor:li", "command:wang"


@pytest.fixture(autouse=True, params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def case_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Two processes share a database: PostgreSQL only (replaces the SQLite/PostgreSQL pair of the suite)."""
    yield from pg_url()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """The node's bus: one in-process bus shared by both runtimes, or a NATS server (fresh stream, prefix)."""
    if request.param == "nats":
        nats_ready()
    return str(request.param)


def serve(rt: CityBrain) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """Return an HTTP client of one process (cases and Open311 routes, as casecity.city serves them)."""
    return testing.serve(rt, EXTENSIONS)


@asynccontextmanager
async def two_processes(tmp_path: Path, url: str, kind: str) -> AsyncIterator[
        tuple[Node, tuple[CityBrain, httpx.AsyncClient], tuple[CityBrain, httpx.AsyncClient]]]:
    """Start process A (it writes the test city), then process B; yield the node and (runtime, client) of each."""
    async with Node(url, lambda: settings(tmp_path), COMPONENTS, kind, FakeClock(START)) as node:
        a = await node.start()
        await build_city(a)
        b = await node.start()
        async with serve(a) as ca, serve(b) as cb:
            yield node, (a, ca), (b, cb)


def desk(rt: CityBrain) -> CaseDesk:
    found: CaseDesk = rt.ports.cases
    return found


def plant(rt: CityBrain, case: dict[str, Any], version: int) -> None:
    """Put an old copy of a case into a process's cache, as if the events since had not arrived yet."""
    d = desk(rt)
    d.cache[case["id"]] = (msgspec.json.encode(case), version)
    d.newest.pop(case["id"], None)


async def stored(rt: CityBrain, case_id: str) -> tuple[dict[str, Any], int]:
    doc = await rt.store.get_doc("cases", case_id)
    assert doc is not None
    return doc.data, doc.version


async def test_a_case_stepped_on_one_process_is_stepped_on_the_other(tmp_path: Path, case_store: str,
                                                                    bus_kind: str) -> None:
    async with two_processes(tmp_path, case_store, bus_kind) as (node, (a, ca), (b, cb)):
        got = await report(ca, "E0102", channel="hotline", text="垃圾 garbage by the gate", who="operator:hotline")
        cid = got["id"]
        assert got["state"] == "intake" and cid in desk(a).cache  # A holds the case at intake
        filed = await step(cb, cid, "file", SUP)  # B files it; the routing rule dispatches it at once
        assert filed["state"] == "dispatched" and filed["departments"] == ["sanitation"]
        await node.settle()
        assert (await step(ca, cid, "accept", "dept:sanitation:qian"))["state"] == "handling"
        assert (await step(cb, cid, "feedback", "dept:sanitation:qian", note="cleared"))["state"] == "feedback"
        assert (await step(ca, cid, "verify", SUP))["state"] == "verified"
        assert (await step(cb, cid, "close", SUP))["state"] == "closed"
        await step(ca, cid, "evaluate", CMD, score=4)
        case = await get(cb, cid)
        assert [e["step"] for e in case["timeline"]] == ["intake", "file", "dispatch", "accept", "feedback", "verify",
                                                         "close", "evaluate"]
        assert case["state"] == "evaluated" and case["version"] == 8  # every step written once, none lost


async def test_a_stale_cached_copy_costs_one_retry_and_loses_nothing(tmp_path: Path, case_store: str,
                                                                    bus_kind: str) -> None:
    async with two_processes(tmp_path, case_store, bus_kind) as (node, (a, ca), (b, cb)):
        cid = (await report(ca, "E9901", channel="hotline", who="operator:hotline"))["id"]
        await step(ca, cid, "file", SUP)
        await step(ca, cid, "dispatch", CMD, lead="urban", assist=["sanitation"])
        old, version = await stored(a, cid)
        # B takes the case on: urban accepts; A has not heard yet (its copy is older)
        assert (await step(cb, cid, "accept", "dept:urban:zhao"))["state"] == "handling"
        await node.settle()
        plant(a, old, version)
        # the stale copy says the step is fine: the write meets the version check, is dropped and retried
        await step(ca, cid, "accept", "dept:sanitation:qian")
        case, now = await stored(a, cid)
        assert [t["state"] for t in case["tasks"]] == ["accepted", "accepted"]  # B's accept survived
        assert now == version + 2 and desk(a).cache[cid][1] == now
        # the stale copy says the step is not allowed (still dispatched, no feedback yet): refused on a cached
        # copy, the step is tried once more on the stored case, where it holds
        await step(cb, cid, "feedback", "dept:urban:zhao")
        await step(cb, cid, "feedback", "dept:sanitation:qian")
        await node.settle()
        plant(a, case, now)
        assert (await step(ca, cid, "verify", SUP))["state"] == "verified"
        # refused on fresh state too: the 409 stands
        await step(ca, cid, "accept", "dept:urban:zhao", 409)
        await node.settle()
        assert (await step(cb, cid, "close", SUP))["state"] == "closed"


async def test_duplicates_are_found_whichever_process_took_the_first_report(tmp_path: Path, case_store: str,
                                                                          bus_kind: str) -> None:
    async with two_processes(tmp_path, case_store, bus_kind) as (node, (a, ca), (b, cb)):
        first = await report(ca, "C0110", ij=(1, 1), text="路灯不亮 street light out at the corner")
        await node.settle()
        lon, lat = centre(1, 1)
        r = await cb.post("/api/v1/cases", json={"category": "C0110", "channel": "grid", "lon": lon + 0.0001,
                                                 "lat": lat, "description": "light is out"}, headers=actor("grid:x"))
        second = r.json()
        assert [d["id"] for d in second["duplicates"]] == [first["id"]] and second["duplicates"][0]["metres"] < 50
        # text similarity uses what every process has seen: the same words far apart in A's community
        await node.settle()
        third = await report(ca, "C0110", ij=(0, 0), text="street light out at the corner 路灯不亮")
        assert [d["id"] for d in third["duplicates"]] == [first["id"]]
        # merged on B: A no longer proposes the merged report
        await step(cb, third["id"], "merge", SUP, into=first["id"])
        await step(cb, second["id"], "merge", SUP, into=first["id"])
        await node.settle()
        fourth = await report(ca, "C0110", ij=(1, 1), text="street light out at the corner")
        assert [d["id"] for d in fourth["duplicates"]] == [first["id"]]
        await node.settle()
        for rt in (a, b):
            assert set(desk(rt).index.by_category["C0110"]) == {first["id"], fourth["id"]}


def escalations(cases: list[dict[str, Any]]) -> Counter[tuple[str, str | None, int]]:
    return Counter((c["id"], e.get("task"), e["level"]) for c in cases for e in c["timeline"] if e["step"] == "escalate")


async def test_two_processes_sweeping_at_once_escalate_each_clock_once(tmp_path: Path, case_store: str,
                                                                      bus_kind: str) -> None:
    async with two_processes(tmp_path, case_store, bus_kind) as (node, (a, ca), (b, cb)):
        ids = [(await report(client, "E0102", ij=(k % 4, k // 4), text=f"garbage {k}"))["id"]
               for k, client in enumerate([ca, cb, ca, cb, ca, cb])]
        await node.settle()
        node.clock.advance(5.25 * 3600)  # 14:15 local: every task is past its 4 working hours
        recorded = 0
        for _ in range(2):  # a second round finds nothing left to do
            counts = await asyncio.gather(check_deadlines(a), check_deadlines(b))
            recorded += sum(c["escalate"] for c in counts)
        cases = [(await stored(a, cid))[0] for cid in ids]
        done = escalations(cases)
        assert set(done) == {(cid, "T1", 1) for cid in ids}
        assert all(n == 1 for n in done.values()) and recorded == len(ids)
        node.clock.advance(4 * 3600)  # 18:15: four working hours late -> the command centre
        counts = await asyncio.gather(check_deadlines(b), check_deadlines(a))
        cases = [(await stored(b, cid))[0] for cid in ids]
        done = escalations(cases)
        assert all(n == 1 for n in done.values()) and {(cid, "T1", 2) for cid in ids} <= set(done)
        assert sum(c["escalate"] for c in counts) == sum(done.values()) - len(ids)
        assert all(c["tasks"][0]["escalated_to"] == "command-centre" for c in cases)


async def test_escalation_happens_when_the_last_writer_is_gone(tmp_path: Path, case_store: str,
                                                              bus_kind: str) -> None:
    async with two_processes(tmp_path, case_store, bus_kind) as (node, (a, ca), (b, cb)):
        got = await report(cb, "E0102", channel="hotline", text="garbage", who="operator:hotline")
        cid = got["id"]
        old, version = await stored(b, cid)  # B's copy: intake
        await step(ca, cid, "file", SUP)  # A files and dispatches: A wrote the case last
        await node.settle()
        plant(b, old, version)  # even if B missed every event since, the checker reads the store
        await node.stop(a)
        node.clock.advance(5.25 * 3600)
        counts = await check_deadlines(b)
        assert counts["escalate"] == 1
        case, _ = await stored(b, cid)
        assert case["tasks"][0]["escalation"] == 1 and case["tasks"][0]["escalated_to"] == "head:sanitation"
        assert case["overdue"] and escalations([case]) == Counter({(cid, "T1", 1): 1})
        # B goes on with the case as it is stored, not as it once cached it
        assert (await step(cb, cid, "accept", "dept:sanitation:qian"))["state"] == "handling"
