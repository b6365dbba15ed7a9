"""The risk list, the situation overview and the live alert stream default to a place-scoped caller's area.

A community operator of c1 sees c1's cell at risk but not c2's, the situation of c1's places only, and on the
alert stream only alerts placed in c1; a city operator sees both; asking for another community is refused.
"""

from __future__ import annotations

import asyncio

from trustcity import C1, C2, G1, G2, T1, T2, City


def at_risk(place: str, community: str, score: float) -> dict[str, object]:
    return {"place": place, "type": "Grid", "community": community, "level": "orange", "score": score,
            "factors": [], "explanation": "test hazard"}


async def test_risk_and_situation_are_confined(city: City) -> None:
    model = city.rt.ports.risk
    model.risk[G1] = at_risk(G1, C1, 0.6)
    model.risk[G2] = at_risk(G2, C2, 0.8)
    c = city.client
    mine = await c.get("/api/v1/risk", headers=city.auth("community_operator"))
    assert mine.status_code == 200 and [r["place"] for r in mine.json()] == [G1]
    everyone = await c.get("/api/v1/risk", headers=city.auth("city_operator"))
    assert [r["place"] for r in everyone.json()] == [G2, G1]
    narrowed = await c.get("/api/v1/risk", params={"place": C2}, headers=city.auth("city_operator"))
    assert [r["place"] for r in narrowed.json()] == [G2]
    assert (await c.get("/api/v1/risk", params={"place": C2},
                        headers=city.auth("community_operator"))).status_code == 403
    await city.rt.execute("observations.ingest", {"items": [
        {"entity": t, "observedAt": "2026-03-01T07:59:00Z", "values": {"intensity": 300}} for t in (T1, T2)]})
    await asyncio.sleep(0.2)  # the situation service takes observations from the bus

    async def communities(role: str) -> list[str]:
        r = await c.get("/api/v1/situation", params={"level": "community"}, headers=city.auth(role))
        assert r.status_code == 200, r.text
        return sorted(p["place"] for p in r.json()["places"])

    assert await communities("city_operator") == [C1, C2]
    assert await communities("community_operator") == [C1]
    # a district's figures aggregate every community in it: not shown to one community's operator
    r = await c.get("/api/v1/situation", params={"level": "district"}, headers=city.auth("community_operator"))
    assert r.status_code == 200 and r.json()["places"] == []
    r = await c.get("/api/v1/situation", params={"level": "district"}, headers=city.auth("city_operator"))
    assert [p["place"] for p in r.json()["places"]] == ["urn:ngsi-ld:District:d1"]


async def test_alert_stream_carries_only_the_callers_area(city: City) -> None:
    c = city.client

    async def first_event(headers: dict[str, str]) -> str:
        return (await c.get("/api/v1/alerts/stream", params={"max": 1}, headers=headers)).text

    mine = asyncio.create_task(first_event(city.auth("community_operator")))
    everyone = asyncio.create_task(first_event(city.auth("city_operator")))
    await asyncio.sleep(0.3)  # both streams subscribed
    for n, (grid, community) in enumerate(((G2, C2), (G1, C1))):
        await city.rt.emit("alert.raised", {"alert_id": f"a{n}", "place": grid, "community": community,
                                            "category": "test", "warningLevel": "orange"}, record=False)
    got_mine, got_all = await asyncio.wait_for(asyncio.gather(mine, everyone), 10)
    assert '"alert_id":"a1"' in got_mine and '"alert_id":"a0"' not in got_mine
    assert '"alert_id":"a0"' in got_all  # the city operator's stream had c2's alert first
    refused = await c.get("/api/v1/alerts/stream", params={"max": 1, "place": C2},
                          headers=city.auth("community_operator"))
    assert refused.status_code == 403
