"""Authorised operation: request -> approve -> use -> revoke; expiry, masking, area, rate limit, provenance, ledger."""

from __future__ import annotations

import orjson
from trustcity import C1, T1, T2, City

EXT, OFFICER = "external_user", "data_officer"


async def request_and_approve(city: City, **grant: object) -> str:
    body = {"dataset": "traffic-flow", "purpose": "congestion study", "fields": ["intensity"], "area": C1,
            "expires": "2026-03-02T08:00:00Z"} | grant
    r = await city.client.post("/api/v1/grants", json=body, headers=city.auth(EXT))
    assert r.status_code == 201, r.text
    gid: str = r.json()["id"]
    assert r.json()["status"] == "requested" and r.json()["grantee"] == "external-user"
    # the requester cannot approve (role), and the data officer can
    assert (await city.client.post(f"/api/v1/grants/{gid}/approve", headers=city.auth(EXT))).status_code == 403
    r = await city.client.post(f"/api/v1/grants/{gid}/approve", headers=city.auth(OFFICER))
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    return gid


async def test_grant_lifecycle_fields_area_and_provenance(city: City) -> None:
    c = city.client
    url = "/api/v1/data/traffic-flow"
    assert (await c.get(url, headers=city.auth(EXT))).status_code == 403  # conditional: no grant yet
    gid = await request_and_approve(city)
    r = await c.get(url, params={"grant": gid}, headers=city.auth(EXT))
    assert r.status_code == 200, r.text
    assert r.headers["x-citybrain-grant"] == gid and r.headers["x-citybrain-dataset"] == "traffic-flow"
    body = r.json()
    assert body["provenance"]["grant"] == gid
    assert [row["id"] for row in body["records"]] == [T1]  # area c1 only
    assert set(body["records"][0]) == {"id", "type", "intensity"}
    assert "averageVehicleSpeed" not in r.text and "31.5" not in r.text  # dropped field never leaves
    assert T2 not in r.text
    csv = await c.get(url, params={"format": "csv"}, headers=city.auth(EXT))
    assert csv.text.startswith("# dataset: traffic-flow\n# grant: " + gid) and "averageVehicleSpeed" not in csv.text
    geo = (await c.get(url, params={"format": "geojson"}, headers=city.auth(EXT))).json()
    assert geo["properties"]["provenance"]["grant"] == gid and geo["features"][0]["properties"]["intensity"] == 420
    pq = await c.get(url, params={"format": "parquet"}, headers=city.auth(EXT))
    assert pq.status_code == 200, pq.text  # pyarrow is a pinned dependency
    import io

    import pyarrow.parquet as parquet

    table = parquet.read_table(io.BytesIO(pq.content))
    assert table.column_names == ["id", "type", "intensity"] and table.num_rows == 1  # masked field absent
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert meta["citybrain.grant"] == gid and meta["citybrain.dataset"] == "traffic-flow"
    # every download is a ledger entry naming who, what, how many, which grant
    ledger = city.rt.ports.ledger
    await ledger.flush()
    entries = [orjson.loads(e) for _, e in await ledger.log.entries(0, ledger.log.size)]
    access = [e for e in entries if e["type"] == "data.access"]
    assert len(access) >= 3
    assert access[0]["data"] | {} == access[0]["data"] and access[0]["data"]["grant"] == gid
    assert access[0]["data"]["count"] == 1 and access[0]["context"]["actor"] == "external_user:external-user"
    # revoke: denied from then on
    r = await c.post(f"/api/v1/grants/{gid}/revoke", json={"reason": "study over"}, headers=city.auth(OFFICER))
    assert r.json()["status"] == "revoked"
    r = await c.get(url, params={"grant": gid}, headers=city.auth(EXT))
    assert r.status_code == 403 and "revoked" in r.text


async def test_expired_grant_denied(city: City) -> None:
    gid = await request_and_approve(city, expires="2026-03-01T09:00:00Z")
    url = "/api/v1/data/traffic-flow"
    assert (await city.client.get(url, params={"grant": gid}, headers=city.auth(EXT))).status_code == 200
    city.clock.advance(3601)
    r = await city.client.get(url, params={"grant": gid}, headers=city.auth(EXT))
    assert r.status_code == 403 and "expired" in r.text
    assert (await city.client.get(url, headers=city.auth(EXT))).status_code == 403  # no live grant is found


async def test_masking_rate_limit_and_other_peoples_grants(city: City) -> None:
    gid = await request_and_approve(city, rate_limit=2)
    await city.client.post(f"/api/v1/grants/{gid}/revoke", headers=city.auth(OFFICER))
    body = {"dataset": "traffic-flow", "purpose": "signal timing", "fields": ["intensity"],
            "expires": "2026-03-05T00:00:00Z", "rate_limit": 2}
    gid = (await city.client.post("/api/v1/grants", json=body, headers=city.auth(EXT))).json()["id"]
    r = await city.client.post(f"/api/v1/grants/{gid}/approve", json={"masking": "mask"}, headers=city.auth(OFFICER))
    assert r.json()["masking"] == "mask"
    url = "/api/v1/data/traffic-flow"
    r = await city.client.get(url, params={"grant": gid}, headers=city.auth(EXT))
    rows = r.json()["records"]
    assert {row["id"] for row in rows} == {T1, T2}  # no area on this grant
    assert all(row["averageVehicleSpeed"] == "***" for row in rows) and "31.5" not in r.text
    assert (await city.client.get(url, params={"grant": gid}, headers=city.auth(EXT))).status_code == 200
    r = await city.client.get(url, params={"grant": gid}, headers=city.auth(EXT))
    assert r.status_code == 429
    # someone else's grant cannot be used
    r = await city.client.get(url, params={"grant": gid}, headers=city.auth("data_officer"))
    assert r.status_code == 403


async def test_open_dataset_and_catalog(city: City) -> None:
    c = city.client
    names = {d["id"]: d for d in (await c.get("/api/v1/catalog", headers=city.auth(EXT))).json()}
    assert names["air-quality"]["classification"] == "open" and names["cases"]["classification"] == "restricted"
    assert names["traffic-flow"]["owner"] == "transport" and "intensity" in names["traffic-flow"]["fields"]
    r = await c.get("/api/v1/data/air-quality", headers=city.auth(EXT))
    assert r.status_code == 200 and r.headers["x-citybrain-grant"] == "open"
    new = {"id": "noise", "title": "Noise", "owner": "environment", "classification": "open",
           "source": {"kind": "entities", "types": ["NoiseLevelObserved"]}, "fields": ["id", "LAeq"]}
    assert (await c.post("/api/v1/catalog", json=new, headers=city.auth(EXT))).status_code == 403
    assert (await c.post("/api/v1/catalog", json=new, headers=city.auth(OFFICER))).status_code == 201
    mine = (await c.get("/api/v1/grants", headers=city.auth(EXT))).json()
    assert mine == []
