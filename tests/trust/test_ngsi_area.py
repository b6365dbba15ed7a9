"""NGSI-LD query results of a place-scoped identity default to its own area, like case, alert and map listings.

GET /entities, POST /entityOperations/query, the temporal query and the type/attribute discovery routes:
a community operator (scoped to c1) sees t1 only, a city operator sees t1 and t2, and a city operator scoped
to c1 gets the same results through POST /entityOperations/query (a write, which community operators may not do).
"""

from __future__ import annotations

import httpx
import pytest
from trustcity import C1, C2, T1, T2, City

N = "/ngsi-ld/v1"
TFO = "TrafficFlowObserved"


@pytest.fixture
async def scoped_operator(city: City) -> dict[str, str]:
    """Headers of a city_operator confined to community c1 (may POST NGSI-LD queries)."""
    ctx = city.rt.context("admin:test")
    await city.rt.execute("user.add", {"name": "c1-operator", "role": "city_operator", "place": C1}, ctx)
    return {"X-API-Key": (await city.rt.execute("user.key", {"name": "c1-operator"}, ctx))["key"]}


async def ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(e["id"] for e in r.json())


async def test_ngsi_queries_default_to_the_callers_area(city: City, scoped_operator: dict[str, str]) -> None:
    c = city.client
    cases = [  # role -> (headers, expected ids)
        ("community_operator", city.auth("community_operator"), [T1]),
        ("auditor", city.auth("auditor"), [T1, T2]),
        ("city_operator", city.auth("city_operator"), [T1, T2]),
        ("scoped city_operator", scoped_operator, [T1]),
    ]
    wrong = []
    for who, h, want in cases:
        got = await ids(await c.get(f"{N}/entities", params={"type": TFO}, headers=h))
        if got != want:
            wrong.append(f"{who} GET /entities: {got}")
        r = await c.get(f"{N}/entities", params={"type": TFO, "count": "true", "limit": "0"}, headers=h)
        if r.headers.get("NGSILD-Results-Count") != str(len(want)):
            wrong.append(f"{who} count: {r.headers.get('NGSILD-Results-Count')}")
        got = await ids(await c.get(f"{N}/entities", params={"idPattern": ".*", "q": "intensity>0"}, headers=h))
        if got != want:
            wrong.append(f"{who} idPattern+q: {got}")
        got = await ids(await c.get(f"{N}/temporal/entities", params={"type": TFO}, headers=h))
        if got != want:
            wrong.append(f"{who} temporal query: {got}")
        info = await c.get(f"{N}/types/{TFO}", headers=h)
        if info.status_code != 200 or info.json()["entityCount"] != len(want):
            wrong.append(f"{who} /types/{TFO}: {info.status_code} {info.text[:80]}")
        attrs = {a["attributeName"]: a["attributeCount"]
                 for a in (await c.get(f"{N}/attributes", params={"details": "true"}, headers=h)).json()}
        if attrs.get("intensity") != len(want):
            wrong.append(f"{who} /attributes intensity count: {attrs.get('intensity')}")
    assert not wrong, "\n".join(wrong)


async def test_post_query_is_confined_and_named_entities_stay_refused(city: City,
                                                                      scoped_operator: dict[str, str]) -> None:
    c = city.client
    body = {"type": "Query", "entities": [{"type": TFO}]}
    assert await ids(await c.post(f"{N}/entityOperations/query", json=body, headers=scoped_operator)) == [T1]
    assert await ids(await c.post(f"{N}/entityOperations/query", json=body,
                                  headers=city.auth("city_operator"))) == [T1, T2]
    both = {"type": "Query", "entities": [{"id": T1, "type": TFO}, {"id": T2, "type": TFO}]}
    assert await ids(await c.post(f"{N}/entityOperations/query", json=both, headers=scoped_operator)) == [T1]
    # asking by id for an entity outside the area is refused outright (middleware), in and out of temporal
    h = city.auth("community_operator")
    assert (await c.get(f"{N}/entities/{T2}", headers=h)).status_code == 403
    assert (await c.get(f"{N}/temporal/entities/{T2}", headers=h)).status_code == 403
    assert (await c.get(f"{N}/entities", params={"type": TFO, "place": C2}, headers=h)).status_code == 403
    # the whole-city types listing does not reveal types that only exist outside the area
    ctx = city.rt.context("admin:test")
    await city.rt.execute("entity.write", {"entity": {
        "id": "urn:ngsi-ld:WaterQualityObserved:w2", "type": "WaterQualityObserved",
        "location": {"type": "Point", "coordinates": [116.7, 39.3]},
        "attrs": {"temperature": {"type": "Property", "value": 12.5}}}}, ctx)
    mine = (await c.get(f"{N}/types", headers=h)).json()["typeList"]
    everyone = (await c.get(f"{N}/types", headers=city.auth("city_operator"))).json()["typeList"]
    assert "WaterQualityObserved" in everyone and "WaterQualityObserved" not in mine and TFO in mine
