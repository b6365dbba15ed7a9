"""Conformance: query entities (ETSI GS CIM 009 §5.7.2, §4.9 query language, §4.10 geo-queries) — 11 cases (24 with parameters).

type (incl. lists), id, idPattern, q comparisons / ranges / lists / regex / AND / OR / parentheses / nested
paths, attrs, limit/offset, count with NGSILD-Results-Count, keyValues, geo near/within/intersects,
POST /entityOperations/query, /types and /attributes, and the q parser's errors.
"""

from __future__ import annotations

import httpx
import pytest
from ngsi_support import BASE, LD, LINK, create, ld, vehicle

from citybrain.ngsi.errors import BadRequestData
from citybrain.ngsi.ldcontext import resolve
from citybrain.ngsi.query import parse_q, tokenize

H = {"Link": LINK}


@pytest.fixture
async def fleet(client: httpx.AsyncClient) -> httpx.AsyncClient:
    for n, speed in enumerate([10, 50, 90, 120], start=1):
        await create(client, vehicle(n, speed, fuelLevel={"type": "Property", "value": {"tank": {"left": n}}}))
    await create(client, {"id": "urn:ngsi-ld:Building:B1", "type": "Building", "name": {"type": "Property", "value": "Hall"}})
    return client


async def ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    r = await client.get(f"{BASE}/entities", params=params, headers=H)
    assert r.status_code == 200, r.text
    return [e["id"].rsplit(":", 1)[-1] for e in r.json()]


async def test_type_id_idpattern(fleet: httpx.AsyncClient) -> None:
    assert await ids(fleet, type="Vehicle") == ["V1", "V2", "V3", "V4"]
    assert await ids(fleet, type="Vehicle,Building") == ["B1", "V1", "V2", "V3", "V4"]
    assert await ids(fleet, id="urn:ngsi-ld:Vehicle:V2,urn:ngsi-ld:Building:B1") == ["B1", "V2"]
    assert await ids(fleet, type="Vehicle", idPattern="V[13]$") == ["V1", "V3"]


async def test_q_comparisons_ranges_lists(fleet: httpx.AsyncClient) -> None:
    assert await ids(fleet, type="Vehicle", q="speed>50") == ["V3", "V4"]
    assert await ids(fleet, type="Vehicle", q="speed<=50") == ["V1", "V2"]
    assert await ids(fleet, type="Vehicle", q="speed==40..100") == ["V2", "V3"]
    assert await ids(fleet, type="Vehicle", q="speed==10,120") == ["V1", "V4"]
    assert await ids(fleet, type="Vehicle", q="speed!=10") == ["V2", "V3", "V4"]
    assert await ids(fleet, type="Vehicle", q='brandName=="Mercedes";speed>100') == ["V4"]


async def test_q_logic_regex_paths(fleet: httpx.AsyncClient) -> None:
    assert await ids(fleet, type="Vehicle", q="speed<20|speed>100") == ["V1", "V4"]
    assert await ids(fleet, type="Vehicle", q="(speed<20|speed>100);brandName~=Merc") == ["V1", "V4"]
    assert await ids(fleet, type="Vehicle", q="fuelLevel[tank][left]>=3") == ["V3", "V4"]
    assert await ids(fleet, type="Vehicle", q="speed.observedAt==2024-01-01T00:00:00.000Z") == ["V1", "V2", "V3", "V4"]
    assert await ids(fleet, q="name") == ["B1"]


async def test_attrs_limit_offset_count(fleet: httpx.AsyncClient) -> None:
    r = await fleet.get(f"{BASE}/entities", params={"type": "Vehicle", "limit": 2, "offset": 1, "count": "true"}, headers=H)
    assert [e["id"][-2:] for e in r.json()] == ["V2", "V3"] and r.headers["NGSILD-Results-Count"] == "4"
    r = await fleet.get(f"{BASE}/entities", params={"type": "Vehicle", "limit": 0, "count": "true"}, headers=H)
    assert r.json() == [] and r.headers["NGSILD-Results-Count"] == "4"
    r = await fleet.get(f"{BASE}/entities", params={"attrs": "name"}, headers=H)
    assert [set(e) for e in r.json()] == [{"id", "type", "name"}]
    r = await fleet.get(f"{BASE}/entities", params={"type": "Vehicle", "q": "speed>100", "options": "keyValues"}, headers=H)
    assert r.json()[0]["speed"] == 120


async def test_geo_queries(fleet: httpx.AsyncClient) -> None:
    near = {"type": "Vehicle", "georel": "near;maxDistance==100", "geometry": "Point", "coordinates": "[2.001,48.0]"}
    assert await ids(fleet, **near) == ["V1", "V2"]
    far = {**near, "georel": "near;minDistance==100"}
    assert await ids(fleet, **far) == ["V3", "V4"]
    box = "[[[2.0015,47.9],[2.0035,47.9],[2.0035,48.1],[2.0015,48.1],[2.0015,47.9]]]"
    assert await ids(fleet, type="Vehicle", georel="within", geometry="Polygon", coordinates=box) == ["V2", "V3"]
    assert await ids(fleet, type="Vehicle", georel="intersects", geometry="Polygon", coordinates=box) == ["V2", "V3"]
    assert await ids(fleet, type="Vehicle", georel="disjoint", geometry="Polygon", coordinates=box) == ["V1", "V4"]


async def test_post_query(fleet: httpx.AsyncClient) -> None:
    body = {"type": "Query", "entities": [{"type": "Vehicle"}], "q": "speed>60",
            "geoQ": {"georel": "near;maxDistance==10000", "geometry": "Point", "coordinates": [2.0, 48.0]}}
    r = await fleet.post(f"{BASE}/entityOperations/query", content=ld(body), headers=LD)
    assert r.status_code == 200 and [e["id"][-2:] for e in r.json()] == ["V3", "V4"]


async def test_types_and_attributes(fleet: httpx.AsyncClient) -> None:
    r = await fleet.get(f"{BASE}/types", headers=H)
    assert r.json()["typeList"] == ["Building", "Vehicle"]
    info = (await fleet.get(f"{BASE}/types/Vehicle", headers=H)).json()
    assert info["entityCount"] == 4 and "speed" in {a["attributeName"] for a in info["attributeDetails"]}
    assert (await fleet.get(f"{BASE}/types/Nope", headers=H)).status_code == 404
    attrs = (await fleet.get(f"{BASE}/attributes", headers=H)).json()["attributeList"]
    assert {"speed", "brandName", "name"} <= set(attrs)
    one = (await fleet.get(f"{BASE}/attributes/speed", headers=H)).json()
    assert one["attributeCount"] == 4 and one["typeNames"] == ["Vehicle"]
    details = (await fleet.get(f"{BASE}/types", params={"details": "true"}, headers=H)).json()
    assert {d["typeName"] for d in details} == {"Building", "Vehicle"}


async def test_trailing_slash(fleet: httpx.AsyncClient) -> None:
    r = await fleet.get(f"{BASE}/entities/", params={"type": "Vehicle"}, headers=H)
    assert r.status_code == 200 and len(r.json()) == 4


def test_tokenizer() -> None:
    kinds = [t.kind for t in tokenize('(a>1|b.c=="x;y");d[e]~=f.*')]
    assert kinds == ["(", "path", "op", "value", "|", "path", "op", "value", ")", ";", "path", "op", "value", "end"]


@pytest.mark.parametrize("q", ["", "speed>", ">5", "(speed>1", "speed>1)", "speed>1;;b", 'name=="x', "speed>>1",
                               "a..b==1", "speed<1..3", "speed~=(", "sp eed>1", "speed>1|", "a[b==1"])
def test_parse_errors(q: str) -> None:
    with pytest.raises(BadRequestData):
        parse_q(q, resolve(None))


async def test_bad_q_is_400(fleet: httpx.AsyncClient) -> None:
    r = await fleet.get(f"{BASE}/entities", params={"type": "Vehicle", "q": "speed>>1"})
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
