"""Conformance: entities (ETSI GS CIM 009 §5.6.1–5.6.6, 5.7.1) — 14 cases.

create (201 + Location, 409 on duplicate), retrieve (normalized, keyValues, concise, attrs, pick/omit,
sysAttrs), delete, append (noOverwrite → 207), update (PATCH attrs, 204/207), partial attribute update,
replace attribute, replace entity, merge (incl. urn:ngsi-ld:null), delete attribute, and that writes are
recorded as command events of the city model.
"""

from __future__ import annotations

import httpx
from ngsi_support import BASE, LD, LINK, create, ld, vehicle

from citybrain.runtime import CityBrain

V1 = "urn:ngsi-ld:Vehicle:V1"
H = {"Link": LINK}


async def get(client: httpx.AsyncClient, eid: str = V1, **params: str) -> dict:
    r = await client.get(f"{BASE}/entities/{eid}", params=params, headers=H)
    assert r.status_code == 200, r.text
    return r.json()


async def test_create_and_location(client: httpx.AsyncClient) -> None:
    r = await create(client, vehicle())
    assert r.headers["location"] == f"{BASE}/entities/{V1}"
    again = await client.post(f"{BASE}/entities", content=ld(vehicle()), headers=LD)
    assert again.status_code == 409 and again.json()["type"].endswith("AlreadyExists")


async def test_retrieve_normalized_short_names(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    got = await get(client)
    assert got["type"] == "Vehicle" and got["speed"] == {"type": "Property", "value": 50,
                                                         "observedAt": "2024-01-01T00:00:00.000Z"}
    assert got["brandName"]["value"] == "Mercedes"
    bare = (await client.get(f"{BASE}/entities/{V1}")).json()  # core context only: test-suite terms expand
    assert "https://ngsi-ld-test-suite/context#speed" in bare


async def test_retrieve_representations(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    kv = await get(client, options="keyValues")
    assert kv["speed"] == 50 and kv["location"]["type"] == "Point"
    assert (await get(client, format="simplified"))["speed"] == 50
    concise = await get(client, options="concise")
    assert concise["speed"] == {"value": 50, "observedAt": "2024-01-01T00:00:00.000Z"} and concise["brandName"] == "Mercedes"


async def test_retrieve_attrs_pick_omit_sysattrs(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    assert set(await get(client, attrs="speed")) == {"id", "type", "speed"}
    assert set(await get(client, pick="id,speed")) == {"id", "speed"}
    assert "speed" not in await get(client, omit="speed")
    sys = await get(client, options="sysAttrs")
    assert sys["createdAt"] and sys["modifiedAt"]


async def test_ld_json_response_has_context(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.get(f"{BASE}/entities/{V1}", headers={**H, "Accept": "application/ld+json"})
    assert r.headers["content-type"].startswith("application/ld+json") and "@context" in r.json()
    r = await client.get(f"{BASE}/entities/{V1}", headers=H)
    assert "rel=\"http://www.w3.org/ns/json-ld#context\"" in r.headers["link"]


async def test_delete(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    assert (await client.delete(f"{BASE}/entities/{V1}")).status_code == 204
    assert (await client.get(f"{BASE}/entities/{V1}")).status_code == 404
    assert (await client.delete(f"{BASE}/entities/{V1}")).status_code == 404


async def test_append_and_no_overwrite(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.post(f"{BASE}/entities/{V1}/attrs", json={"fuelLevel": {"type": "Property", "value": 0.5}}, headers=H)
    assert r.status_code == 204
    r = await client.post(f"{BASE}/entities/{V1}/attrs", params={"options": "noOverwrite"}, headers=H,
                          json={"speed": {"type": "Property", "value": 1}, "name": {"type": "Property", "value": "x"}})
    assert r.status_code == 207 and r.json()["notUpdated"][0]["attributeName"] == "https://ngsi-ld-test-suite/context#speed"
    got = await get(client)
    assert got["speed"]["value"] == 50 and got["fuelLevel"]["value"] == 0.5 and got["name"]["value"] == "x"


async def test_update_attrs_207_for_missing(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.patch(f"{BASE}/entities/{V1}/attrs", json={"speed": {"type": "Property", "value": 80}}, headers=H)
    assert r.status_code == 204 and (await get(client))["speed"]["value"] == 80
    r = await client.patch(f"{BASE}/entities/{V1}/attrs", headers=H,
                           json={"speed": {"type": "Property", "value": 81}, "nope": {"type": "Property", "value": 1}})
    assert r.status_code == 207 and r.json()["updated"] and r.json()["notUpdated"]


async def test_partial_attribute_update(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.patch(f"{BASE}/entities/{V1}/attrs/speed", json={"value": 99}, headers=H)
    assert r.status_code == 204
    got = await get(client)
    assert got["speed"]["value"] == 99 and got["speed"]["observedAt"] == "2024-01-01T00:00:00.000Z"
    assert (await client.patch(f"{BASE}/entities/{V1}/attrs/nope", json={"value": 1}, headers=H)).status_code == 404


async def test_replace_attribute(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.put(f"{BASE}/entities/{V1}/attrs/speed", json={"type": "Property", "value": 7}, headers=H)
    assert r.status_code == 204
    assert (await get(client))["speed"] == {"type": "Property", "value": 7}


async def test_replace_entity(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.put(f"{BASE}/entities/{V1}", json={"type": "Vehicle", "fuelLevel": {"type": "Property", "value": 1}},
                         headers=H)
    assert r.status_code == 204
    got = await get(client)
    assert "speed" not in got and got["fuelLevel"]["value"] == 1


async def test_merge_entity(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    r = await client.patch(f"{BASE}/entities/{V1}", headers=H, json={
        "speed": {"value": 10}, "brandName": "urn:ngsi-ld:null", "fuelLevel": {"type": "Property", "value": 2}})
    assert r.status_code == 204
    got = await get(client)
    assert got["speed"]["value"] == 10 and "brandName" not in got and got["fuelLevel"]["value"] == 2


async def test_delete_attribute(client: httpx.AsyncClient) -> None:
    await create(client, vehicle())
    assert (await client.delete(f"{BASE}/entities/{V1}/attrs/speed", headers=H)).status_code == 204
    assert "speed" not in await get(client)
    assert (await client.delete(f"{BASE}/entities/{V1}/attrs/speed", headers=H)).status_code == 404


async def test_writes_are_city_model_events(client: httpx.AsyncClient, runtime: CityBrain) -> None:
    await create(client, vehicle())
    await client.patch(f"{BASE}/entities/{V1}/attrs/speed", json={"value": 1, "observedAt": "2024-01-01T00:01:00Z"},
                       headers=H)
    types = [e.type for e in await runtime.store.events(type_prefix="command.entity")]
    assert types == ["command.entity.write", "command.entity.update"]
    assert [h.value for h in await runtime.store.history(V1, "https://ngsi-ld-test-suite/context#speed")] == [50, 1]
