"""One case through every state, co-handling by two departments, roles, and each exception path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cases.casecity import actor, cell, centre, city

SUP, SUP2, CMD = "supervisor:li", "supervisor:zhou", "command:wang"


async def step(client: httpx.AsyncClient, case_id: str, name: str, who: str, status: int = 200,
               **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/v1/cases/{case_id}/{name}", json=body, headers=actor(who))
    assert r.status_code == status, r.text
    return dict(r.json())


async def report(client: httpx.AsyncClient, category: str, channel: str = "grid", ij: tuple[int, int] = (0, 0),
                 text: str = "", who: str = "grid:wu") -> dict[str, Any]:
    lon, lat = centre(*ij)
    r = await client.post("/api/v1/cases", json={"category": category, "channel": channel, "lon": lon, "lat": lat,
                                                  "description": text}, headers=actor(who))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def get(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/cases/{case_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_every_state_with_two_departments(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        got = await report(client, "E9901", channel="hotline", text="杂物堵塞楼道 junk blocks the stairwell",
                           who="operator:hotline")
        cid = got["id"]
        assert got["state"] == "intake"  # hotline reports wait for a supervisor
        await step(client, cid, "file", CMD, 403)  # command cannot file: supervision and command are separate
        filed = await step(client, cid, "file", SUP, note="立案 meets filing conditions")
        assert filed["state"] == "filed" and filed["queue"] == "command-centre"  # no rule for E9901
        queue = (await client.get("/api/v1/cases", params={"queue": "command-centre"})).json()
        assert [c["id"] for c in queue] == [cid]
        await step(client, cid, "dispatch", SUP, 403, lead="urban")
        await step(client, cid, "dispatch", CMD, 400, lead="nobody")
        sent = await step(client, cid, "dispatch", CMD, lead="urban", assist=["sanitation"])
        assert sent["state"] == "dispatched" and sent["departments"] == ["sanitation", "urban"]
        await step(client, cid, "accept", "dept:police:ma", 409)  # police holds no task here
        assert (await step(client, cid, "accept", "dept:urban:zhao"))["state"] == "handling"
        await step(client, cid, "feedback", "dept:urban:zhao", note="杂物已清理 cleared")
        assert (await get(client, cid))["state"] == "handling"  # still waiting for sanitation
        assert (await step(client, cid, "feedback", "dept:sanitation:qian", note="运走 taken away"))["state"] == "feedback"
        failed = await step(client, cid, "verify", SUP, passed=False, note="还有残留 some left")
        assert failed["state"] == "handling"
        await step(client, cid, "feedback", "dept:urban:zhao", note="全部清理 all gone")
        await step(client, cid, "feedback", "dept:sanitation:qian", note="done")
        await step(client, cid, "verify", CMD, 403)
        assert (await step(client, cid, "verify", SUP, note="核查通过 checked"))["state"] == "verified"
        assert (await step(client, cid, "close", SUP))["state"] == "closed"
        await step(client, cid, "evaluate", SUP, 400, score=9)
        assert (await step(client, cid, "evaluate", SUP, score=5))["state"] == "evaluated"
        case = await get(client, cid)
        steps = [e["step"] for e in case["timeline"]]
        assert steps == ["intake", "file", "dispatch", "accept", "feedback", "feedback", "verify-failed", "feedback",
                         "feedback", "verify", "close", "evaluate"]
        assert all(e["actor"] and e["time"] and "note" in e for e in case["timeline"])
        assert case["routed_by"] == "command-centre" and case["evaluation"]["on_time"] is True
        events = await rt.store.events(type_prefix="command.case.")
        assert len(events) == 12 and {e.data["case"] for e in events} == {cid}
        await step(client, cid, "close", SUP, 409)  # closed is closed


async def test_send_back_extension_suspend_cancel(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        # send back (回退): sanitation says it is not theirs; the command centre approves; it is re-dispatched
        c1 = (await report(client, "E0102", text="garbage heap"))["id"]
        assert (await get(client, c1))["departments"] == ["sanitation"]
        x = await step(client, c1, "exception", "dept:sanitation:qian", kind="send_back", reason="属于城管 not ours")
        await step(client, c1, "approve", "dept:sanitation:qian", 403, exception=x["exception"])
        await step(client, c1, "approve", SUP, 403, exception=x["exception"])  # send-back is the command centre's
        back = await step(client, c1, "approve", CMD, exception=x["exception"])
        assert back["state"] == "filed" and back["queue"] == "command-centre"
        assert (await step(client, c1, "dispatch", CMD, lead="urban"))["departments"] == ["urban"]
        # extension (延期): +8 working hours on the task, rejected once, then approved
        task = (await get(client, c1))["tasks"][-1]
        x = await step(client, c1, "exception", "dept:urban:zhao", kind="extension", reason="需要机械 machinery", hours=8)
        await step(client, c1, "approve", CMD, exception=x["exception"], approve=False, note="先尝试 try first")
        x = await step(client, c1, "exception", "dept:urban:zhao", kind="extension", reason="确需机械", hours=8)
        await step(client, c1, "approve", CMD, exception=x["exception"])
        after = (await get(client, c1))["tasks"][-1]
        assert after["deadline"] > task["deadline"]
        cal = rt.ports.cases.catalog.calendars["default"]
        from citybrain.clock import parse_time
        assert cal.hours_between(parse_time(task["deadline"]), parse_time(after["deadline"])) == 8.0
        kinds = [(e["kind"], e["state"]) for e in (await get(client, c1))["exceptions"]]
        assert kinds == [("send_back", "approved"), ("extension", "rejected"), ("extension", "approved")]
        # suspension (挂账): into the problem ledger, clocks stop, resume moves them on
        x = await step(client, c1, "exception", "dept:urban:zhao", kind="suspend", reason="需立项资金 needs budget")
        assert (await step(client, c1, "approve", CMD, exception=x["exception"]))["state"] == "suspended"
        assert [c["id"] for c in (await client.get("/api/v1/cases/ledger")).json()] == [c1]
        clock.advance(24 * 3600)  # Monday 09:00 -> Tuesday 09:00: 8 working hours in the ledger
        resumed = await step(client, c1, "resume", CMD)
        assert resumed["state"] == "dispatched"
        moved = (await get(client, c1))["tasks"][-1]
        assert cal.hours_between(parse_time(after["deadline"]), parse_time(moved["deadline"])) == 8.0
        # cancellation (作废): a supervisor asks, another supervisor approves (never the requester)
        c2 = (await report(client, "E0104", ij=(3, 3), text="dirty street"))["id"]
        x = await step(client, c2, "exception", SUP, kind="cancel", reason="重复上报且已处理 invalid")
        await step(client, c2, "approve", SUP, 403, exception=x["exception"])
        await step(client, c2, "approve", CMD, 403, exception=x["exception"])
        assert (await step(client, c2, "approve", SUP2, exception=x["exception"]))["state"] == "cancelled"
        await step(client, c2, "exception", "dept:sanitation:qian", 409, kind="extension", reason="late", hours=2)
        timeline = [e["step"] for e in (await get(client, c2))["timeline"]]
        assert timeline[-2:] == ["request-cancel", "approve-cancel"]


async def test_roles_and_bad_steps(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        cid = (await report(client, "C0110"))["id"]
        r = await client.post(f"/api/v1/cases/{cid}/fly", json={}, headers=actor(SUP))
        assert r.status_code == 404 and r.json()["field"] == "step"
        r = await client.post("/api/v1/cases/nope/verify", json={}, headers=actor(SUP))
        assert r.status_code == 404
        r = await client.post("/api/v1/cases", json={"category": "X1", "channel": "grid"}, headers=actor("grid:wu"))
        assert r.status_code == 404 and r.json()["field"] == "category"
        r = await client.post("/api/v1/cases", json={"category": "C0110", "place": "urn:ngsi-ld:Grid:nope"})
        assert r.status_code == 400 and r.json()["field"] == "place"
        r = await client.post(f"/api/v1/cases/{cid}/exception", json={"kind": "holiday", "reason": "x"},
                              headers=actor("dept:urban:zhao"))
        assert r.status_code == 400 and r.json()["field"] == "kind"
        case = await get(client, cid)
        assert case["place"] == cell(0, 0) and case["tasks"][0]["hours_left"] == 24.0
        filtered = (await client.get("/api/v1/cases", params={"department": "urban", "state": "dispatched"})).json()
        assert [c["id"] for c in filtered] == [cid]
        assert (await client.get("/api/v1/cases", params={"department": "police"})).json() == []
