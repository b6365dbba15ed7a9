"""Conformance: batch entity operations (ETSI GS CIM 009 §5.6.7–5.6.10, 5.6.18) — 7 cases.

create (201 with ids / 207 with per-entity errors), upsert (201 for new, 204 when only updated,
options=update merges, default replaces), update (204/207, noOverwrite), merge, delete (204/207),
and a 2,000-entity upsert in one request.
"""

from __future__ import annotations

import httpx
from ngsi_support import BASE, LD, LINK, ld, vehicle

OPS = f"{BASE}/entityOperations"
H = {"Link": LINK}


async def post(client: httpx.AsyncClient, op: str, body: list, **params: str) -> httpx.Response:
    return await client.post(f"{OPS}/{op}", content=ld(body), headers=LD, params=params)


async def test_create_201_and_207(client: httpx.AsyncClient) -> None:
    r = await post(client, "create", [vehicle(1), vehicle(2)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Vehicle:V1", "urn:ngsi-ld:Vehicle:V2"]
    r = await post(client, "create", [vehicle(2), vehicle(3), {"id": "bad id", "type": "Vehicle"}])
    assert r.status_code == 207
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Vehicle:V3"]
    kinds = sorted(e["error"]["title"] for e in body["errors"])
    assert kinds == ["AlreadyExists", "BadRequestData"]


async def test_upsert_replace_and_update(client: httpx.AsyncClient) -> None:
    r = await post(client, "upsert", [vehicle(1)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Vehicle:V1"]
    r = await post(client, "upsert", [{"id": "urn:ngsi-ld:Vehicle:V1", "type": "Vehicle",
                                       "fuelLevel": {"type": "Property", "value": 3}}], options="update")
    assert r.status_code == 204
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1", headers=H)).json()
    assert got["speed"]["value"] == 50 and got["fuelLevel"]["value"] == 3
    r = await post(client, "upsert", [{"id": "urn:ngsi-ld:Vehicle:V1", "type": "Vehicle",
                                       "fuelLevel": {"type": "Property", "value": 4}}])
    assert r.status_code == 204
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1", headers=H)).json()
    assert "speed" not in got and got["fuelLevel"]["value"] == 4


async def test_update_and_no_overwrite(client: httpx.AsyncClient) -> None:
    await post(client, "create", [vehicle(1)])
    change = {"id": "urn:ngsi-ld:Vehicle:V1", "type": "Vehicle", "speed": {"type": "Property", "value": 1},
              "name": {"type": "Property", "value": "n"}}
    r = await post(client, "update", [change], options="noOverwrite")
    assert r.status_code == 204
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1", headers=H)).json()
    assert got["speed"]["value"] == 50 and got["name"]["value"] == "n"
    r = await post(client, "update", [change, {**change, "id": "urn:ngsi-ld:Vehicle:V9"}])
    assert r.status_code == 207 and r.json()["errors"][0]["error"]["title"] == "ResourceNotFound"


async def test_merge(client: httpx.AsyncClient) -> None:
    await post(client, "create", [vehicle(1)])
    r = await post(client, "merge", [{"id": "urn:ngsi-ld:Vehicle:V1", "type": "Vehicle", "speed": {"value": 5},
                                      "brandName": "urn:ngsi-ld:null"}])
    assert r.status_code == 204, r.text
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Vehicle:V1", headers=H)).json()
    assert got["speed"]["value"] == 5 and "brandName" not in got


async def test_delete_204_207(client: httpx.AsyncClient) -> None:
    await post(client, "create", [vehicle(1), vehicle(2)])
    r = await client.post(f"{OPS}/delete", json=["urn:ngsi-ld:Vehicle:V1"])
    assert r.status_code == 204
    r = await client.post(f"{OPS}/delete/", json=["urn:ngsi-ld:Vehicle:V1", "urn:ngsi-ld:Vehicle:V2"])
    assert r.status_code == 207 and r.json()["success"] == ["urn:ngsi-ld:Vehicle:V2"]


async def test_trailing_slash_upsert(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{OPS}/upsert/", content=ld([vehicle(1)]), headers=LD)
    assert r.status_code == 201


async def test_upsert_2000(client: httpx.AsyncClient) -> None:
    body = [{"id": f"urn:ngsi-ld:Sensor:s{i}", "type": "Sensor", "pm25": {"type": "Property", "value": i}}
            for i in range(2000)]
    r = await client.post(f"{OPS}/upsert", json=body)
    assert r.status_code == 201 and len(r.json()) == 2000
    r = await client.get(f"{BASE}/entities", params={"type": "Sensor", "limit": 0, "count": "true"})
    assert r.headers["NGSILD-Results-Count"] == "2000"
