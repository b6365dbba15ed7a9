"""Open311 GeoReport v2: every endpoint in JSON and XML against the spec's field lists, and its error format."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
from cases.casecity import API_KEY, centre, city

from citybrain.open311.spec import (
    CREATED_FIELDS,
    DEFINITION_FIELDS,
    REQUEST_FIELDS,
    SERVICE_FIELDS,
    TOKEN_FIELDS,
)

BASE = "/open311/v2"


def xml_items(text: str, root: str, item: str) -> list[dict[str, str | None]]:
    """Parse <root><item><field>…</field>…</item>…</root> into dicts (checks the names on the way)."""
    top = ET.fromstring(text)
    assert top.tag == root
    out = []
    for el in top:
        assert el.tag == item
        out.append({child.tag: child.text for child in el})
    return out


async def post(client: httpx.AsyncClient, fmt: str = "json", **fields: str) -> httpx.Response:
    lon, lat = centre(1, 2)
    data = {"api_key": API_KEY, "jurisdiction_id": "tc.example", "service_code": "C0210", "lat": str(lat),
            "long": str(lon), "description": "pothole 坑洼", "address_string": "1 Main St", "email": "a@b.c"}
    data.update(fields)
    return await client.post(f"{BASE}/requests.{fmt}", data={k: v for k, v in data.items() if v != "-"})


async def test_services_and_definitions(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        js = await client.get(f"{BASE}/services.json", params={"jurisdiction_id": "tc.example"})
        assert js.status_code == 200 and js.headers["content-type"].startswith("application/json")
        services = js.json()
        assert services and all(tuple(s) == SERVICE_FIELDS for s in services)
        assert all(s["type"] in ("realtime", "batch", "blackbox") and s["metadata"] is False for s in services)
        xml = await client.get(f"{BASE}/services.xml")
        assert xml.headers["content-type"].startswith("text/xml")
        items = xml_items(xml.text, "services", "service")
        assert [tuple(i) for i in items] == [SERVICE_FIELDS] * len(services)
        assert [i["service_code"] for i in items] == [s["service_code"] for s in services]
        assert (await client.get(f"{BASE}/services")).json() == services
        one = (await client.get(f"{BASE}/services/C0210.json")).json()
        assert tuple(one) == DEFINITION_FIELDS and one["service_code"] == "C0210"
        top = ET.fromstring((await client.get(f"{BASE}/services/C0210.xml")).text)
        assert top.tag == "service_definition" and [c.tag for c in top] == list(DEFINITION_FIELDS)


async def test_post_token_and_get_in_both_formats(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        r = await post(client)
        assert r.status_code == 201, r.text
        (created,) = r.json()
        assert tuple(created) == CREATED_FIELDS
        rid, token = created["service_request_id"], created["token"]
        rx = await post(client, "xml", service_code="E9901", description="其他 other")
        (made,) = xml_items(rx.text, "service_requests", "request")
        assert tuple(made) == CREATED_FIELDS and made["service_notice"]  # unroutable: the command centre decides
        (tok,) = (await client.get(f"{BASE}/tokens/{token}.json")).json()
        assert tok == {"service_request_id": rid, "token": token} and tuple(tok) == TOKEN_FIELDS
        (tx,) = xml_items((await client.get(f"{BASE}/tokens/{token}.xml")).text, "service_requests", "request")
        assert tx == {"service_request_id": rid, "token": token}
        (req,) = (await client.get(f"{BASE}/requests/{rid}.json")).json()
        assert tuple(req) == REQUEST_FIELDS
        assert req["status"] == "open" and req["service_code"] == "C0210" and req["agency_responsible"].startswith("Roads")
        assert req["address"] == "1 Main St" and req["requested_datetime"] == "2026-03-02T01:00:00Z"
        assert req["expected_datetime"] and req["long"] == centre(1, 2)[0]
        (rxml,) = xml_items((await client.get(f"{BASE}/requests/{rid}.xml")).text, "service_requests", "request")
        assert tuple(rxml) == REQUEST_FIELDS and rxml["service_request_id"] == rid and rxml["status"] == "open"
        listed = (await client.get(f"{BASE}/requests.json")).json()
        assert {x["service_request_id"] for x in listed} == {rid, made["service_request_id"]}
        assert all(tuple(x) == REQUEST_FIELDS for x in listed)
        only = (await client.get(f"{BASE}/requests.json", params={"service_code": "E9901", "status": "open"})).json()
        assert [x["service_request_id"] for x in only] == [made["service_request_id"]]
        closed = (await client.get(f"{BASE}/requests.xml", params={"status": "closed"})).text
        assert xml_items(closed, "service_requests", "request") == []
        old = await client.get(f"{BASE}/requests.json", params={"start_date": "2020-01-01T00:00:00Z",
                                                                 "end_date": "2020-02-01T00:00:00Z"})
        assert old.json() == []
        case = (await client.get(f"/api/v1/cases/{rid}")).json()
        assert case["reporter"] == "citizen:anonymous" and "a@b.c" not in str(case)  # no personal data kept


BAD = [
    ({"service_code": "-"}, 400, "service_code"),
    ({"lat": "-", "long": "-", "address_string": "-"}, 400, "location"),
    ({"service_code": "Z999"}, 404, "service_code"),
    ({"description": "x" * 4001}, 400, "4000"),
    ({"lat": "north"}, 400, "lat"),
    ({"lat": "95"}, 400, "lat"),
    ({"long": "-"}, 400, "together"),
    ({"api_key": "-"}, 403, "api_key"),
    ({"api_key": "wrong"}, 403, "api_key"),
    ({"jurisdiction_id": "elsewhere"}, 404, "jurisdiction_id"),
]


async def test_bad_posts_get_spec_errors(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        for fields, code, word in BAD:
            await check_bad_post(client, fields, code, word)
        assert await rt.store.list_docs("cases") == []


async def check_bad_post(client: httpx.AsyncClient, fields: dict[str, str], code: int, word: str) -> None:
    r = await post(client, **fields)
    assert r.status_code == code and r.json()[0]["code"] == code and word in r.json()[0]["description"]
    assert tuple(r.json()[0]) == ("code", "description")
    rx = await post(client, "xml", **fields)
    err = ET.fromstring(rx.text)
    assert rx.status_code == code and err.tag == "errors" and err[0].tag == "error"
    assert err[0].findtext("code") == str(code) and word in (err[0].findtext("description") or "")


async def test_bad_gets_get_spec_errors(tmp_path: Path) -> None:
    async with city(tmp_path) as (rt, client, clock):
        cases = [(f"{BASE}/requests.json?start_date=yesterday", 400), (f"{BASE}/requests.json?end_date=2026-13-01", 400),
                 (f"{BASE}/requests.json?start_date=2026-03-01T00:00:00", 400),
                 (f"{BASE}/requests.json?start_date=2026-03-02T00:00:00Z&end_date=2026-03-01T00:00:00Z", 400),
                 (f"{BASE}/requests.json?status=lost", 400), (f"{BASE}/requests/nope.json", 404),
                 (f"{BASE}/tokens/nope.json", 404), (f"{BASE}/services/Z999.json", 404), (f"{BASE}/bananas.json", 404),
                 (f"{BASE}/services.json?jurisdiction_id=elsewhere", 404)]
        for url, code in cases:
            r = await client.get(url)
            assert r.status_code == code, url
            assert r.json()[0]["code"] == code and r.json()[0]["description"], url
            rx = await client.get(url.replace(".json", ".xml"))
            assert rx.status_code == code and ET.fromstring(rx.text).tag == "errors", url
