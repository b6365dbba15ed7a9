"""Deadlines under a fake clock, alerts that open cases untouched, duplicates and merging, one-matter services."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cases.casecity import actor, cell, centre, city
from test_case_lifecycle import get, report, step

from citybrain.cases import check_deadlines
from citybrain.runtime import CityBrain


async def test_overdue_escalates_to_head_then_command_centre(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        cid = (await report(client, "E0102", text="garbage"))["id"]  # 4 working hours, Monday 09:00 local
        assert (await check_deadlines(rt))["warn"] == 0
        clock.advance(3.5 * 3600)  # 12:30 local, lunch: 3 working hours gone, not yet 80 %
        assert (await check_deadlines(rt))["warn"] == 0
        clock.advance(0.5 * 3600)  # 13:00 + … still 3 h; 13:15 is past 3.2 h
        clock.advance(0.25 * 3600)
        assert (await check_deadlines(rt))["warn"] == 1
        assert (await check_deadlines(rt))["warn"] == 0  # once only
        clock.advance(1 * 3600)  # 14:15: past the 14:00 limit -> the department head
        counts = await check_deadlines(rt)
        assert counts["escalate"] == 1
        case = await get(client, cid)
        task = case["tasks"][0]
        assert task["escalation"] == 1 and task["escalated_to"] == "head:sanitation" and case["overdue"]
        overdue = (await client.get("/api/v1/cases", params={"overdue": "true"})).json()
        assert [c["id"] for c in overdue] == [cid]
        clock.advance(4 * 3600)  # 18:15: four working hours late -> the command centre (task and case clock)
        await check_deadlines(rt)
        case = await get(client, cid)
        assert case["tasks"][0]["escalated_to"] == "command-centre" and case["tasks"][0]["escalation"] == 2
        assert [e["step"] for e in case["timeline"]].count("escalate") >= 2
        await step(client, cid, "feedback", "dept:sanitation:qian", note="finally")
        assert not (await get(client, cid))["overdue"]


async def test_deadline_loop_runs_on_the_runtime_clock(tmp_path: Path) -> None:
    async with city(tmp_path, checker=True) as (rt, client, clock):
        cid = (await report(client, "E0701"))["id"]  # traffic congestion: 1 natural hour
        clock.advance(2 * 3600)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (await get(client, cid))["overdue"]:
                break
        assert (await get(client, cid))["tasks"][0]["escalation"] >= 1


async def wait_for_case(rt: CityBrain, n: int) -> list[dict]:
    for _ in range(300):
        docs = await rt.store.list_docs("cases")
        # routed cases are filed, then dispatched by a second command: wait for both (or the queue)
        if len(docs) >= n and all(d.data["state"] not in ("intake", "filed") or d.data.get("queue") for d in docs):
            return [d.data for d in docs]
        await asyncio.sleep(0.01)
    raise AssertionError("no case appeared")


async def test_sensor_alert_opens_and_routes_a_case_untouched(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        alert = {"alert_id": "A1", "category": "air.pollution", "place": cell(2, 3), "severity": "high",
                 "description": "PM2.5 380 µg/m³ for 3 h", "rule": "pm25-high"}
        await rt.emit("alert.raised", alert, rt.context("system:risk"))
        (case,) = await wait_for_case(rt, 1)
        assert case["state"] == "dispatched" and case["category"] == "E0601" and case["departments"] == ["ecology"]
        assert all(e["actor"].startswith("system:") for e in case["timeline"])
        assert [e["step"] for e in case["timeline"]] == ["intake", "file", "dispatch"]
        # a second alert of the same kind in the same community joins the open case
        await rt.emit("alert.raised", alert | {"alert_id": "A2", "place": cell(3, 2)}, rt.context("system:risk"))
        for _ in range(300):
            joined = await rt.store.get_doc("cases", case["id"])
            if joined and len(joined.data["sources"]) == 2:
                break
            await asyncio.sleep(0.01)
        assert joined is not None and [s["ref"] for s in joined.data["sources"]] == ["A1", "A2"]
        assert len(await rt.store.list_docs("cases")) == 1
        # a flood alert routes to drainage with emergency management assisting
        await rt.emit("alert.raised", {"alert_id": "A3", "category": "flood.waterlogging", "place": cell(0, 0),
                                       "severity": "high", "description": "积水 30 cm", "rule": "flood"})
        cases = await wait_for_case(rt, 2)
        flood = next(c for c in cases if c["category"] == "E0505")
        assert flood["departments"] == ["drainage", "emergency"] and flood["tasks"][0]["role"] == "lead"
        # an alert the desk cannot take is dead-lettered with the reason, not lost
        await rt.emit("alert.raised", {"alert_id": "A4", "category": "air.pollution", "place": "urn:ngsi-ld:Grid:x"})
        for _ in range(300):
            letters = await rt.store.deadletters()
            if letters:
                break
            await asyncio.sleep(0.01)
        assert letters and "unknown place" in letters[0].reason


async def test_duplicates_are_proposed_and_merged(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        first = await report(client, "C0110", ij=(1, 1), text="路灯不亮 street light out at the corner")
        lon, lat = centre(1, 1)
        r = await client.post("/api/v1/cases", json={"category": "C0110", "channel": "grid", "lon": lon + 0.0001,
                                                     "lat": lat, "description": "light is out"}, headers=actor("grid:x"))
        second = r.json()
        assert second["duplicates"][0]["id"] == first["id"] and second["duplicates"][0]["metres"] < 50
        # far apart but same community and nearly the same words: proposed by text similarity
        third = await report(client, "C0110", ij=(0, 0), text="street light out at the corner 路灯不亮")
        assert [d["id"] for d in third["duplicates"]] == [first["id"]]
        other = await report(client, "C0110", ij=(3, 3), text="street light out at the corner")
        assert other["duplicates"] == []  # another community, far away
        await step(client, second["id"], "merge", "dept:urban:zhao", 403, into=first["id"])
        merged = await step(client, second["id"], "merge", "supervisor:li", into=first["id"])
        assert merged["state"] == "merged" and merged["into"] == first["id"]
        target = await get(client, first["id"])
        assert target["merged"] == [second["id"]] and len(target["sources"]) == 2
        assert (await get(client, second["id"]))["tasks"][0]["state"] == "withdrawn"
        await step(client, second["id"], "merge", "supervisor:li", 409, into=first["id"])


async def test_one_matter_one_number_one_status(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        templates = (await client.get("/api/v1/matters")).json()
        assert {t["code"] for t in templates} == {"M01", "M02"}
        r = await client.post("/api/v1/matters", json={"matter": "M01", "applicant": "citizen:anon"},
                              headers=actor("citizen:anon"))
        assert r.status_code == 201, r.text
        number = r.json()["tracking_number"]
        status = (await client.get(f"/api/v1/matters/{number}")).json()
        assert status["status"] == "received" and status["steps"] == 3
        for dept in ("market", "fire"):
            await step(client, number, "feedback", f"dept:{dept}:a", note="办结 done")
        assert (await client.get(f"/api/v1/matters/{number}")).json()["status"] == "in progress"
        await step(client, number, "feedback", "dept:urban:a", note="done")
        final = (await client.get(f"/api/v1/matters/{number}")).json()
        assert final["status"] == "completed" and final["steps_done"] == 3
        assert (await client.post("/api/v1/matters", json={"matter": "M99"})).status_code == 404
        assert (await client.get("/api/v1/matters/nope")).status_code == 404
