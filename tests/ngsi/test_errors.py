"""Conformance: errors as ProblemDetails (ETSI GS CIM 009 §5.5.2, §6.3) — 68 bad requests in one sweep, plus a count check.

Each bad request (invalid JSON, wrong content types, invalid URNs, wrong attribute types, bad parameters,
unparsable q, bad geo-queries, unknown contexts, oversized payloads, unknown resources …) gets a 4xx
(or 503 for an uncached @context) ProblemDetails with an NGSI-LD error type, never a 5xx.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from ngsi_support import BASE, LD, create, vehicle

E = f"{BASE}/entities"
V = f"{E}/urn:ngsi-ld:Vehicle:V1"
J = {"Content-Type": "application/json"}
NOCTX = '<https://example.org/missing.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'


def ent(**attrs: Any) -> bytes:
    return orjson.dumps({"id": "urn:ngsi-ld:Vehicle:X", "type": "Vehicle", **attrs})


# (method, path, params, body bytes or None, headers, expected status)
CASES: list[tuple[str, str, dict[str, str], bytes | None, dict[str, str], int]] = [
    ("POST", E, {}, b"{not json", J, 400),
    ("POST", E, {}, b"", J, 400),
    ("POST", E, {}, b"[]", J, 400),
    ("POST", E, {}, b'"text"', J, 400),
    ("POST", E, {}, b"{}", J, 400),
    ("POST", E, {}, orjson.dumps({"id": "not a urn", "type": "T"}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": 5, "type": "T"}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:ngsi-ld:T:1"}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:ngsi-ld:T:1", "type": ""}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:ngsi-ld:T:1", "type": 7}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:ngsi-ld:T:1", "type": "a b"}), J, 400),
    ("POST", E, {}, ent(speed={"type": "string", "value": 1}), J, 400),
    ("POST", E, {}, ent(speed={"type": "Property"}), J, 400),
    ("POST", E, {}, ent(speed={"type": "Property", "value": None}), J, 400),
    ("POST", E, {}, ent(speed=None), J, 400),
    ("POST", E, {}, ent(owner={"type": "Relationship", "object": "not a uri"}), J, 400),
    ("POST", E, {}, ent(owner={"type": "Relationship"}), J, 400),
    ("POST", E, {}, ent(location={"type": "GeoProperty", "value": {"type": "Point"}}), J, 400),
    ("POST", E, {}, ent(location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}}), J, 400),
    ("POST", E, {}, ent(location={"type": "GeoProperty", "value": "here"}), J, 400),
    ("POST", E, {}, ent(name={"type": "LanguageProperty", "languageMap": "x"}), J, 400),
    ("POST", E, {}, ent(speed={"type": "Property", "value": 1, "observedAt": "yesterday"}), J, 400),
    ("POST", E, {}, ent(speed={"type": "Property", "value": 1, "unitCode": 5}), J, 400),
    ("POST", E, {}, ent(**{"bad name": 1}), J, 400),
    ("POST", E, {}, ent(speed=[{"type": "Property", "value": 1, "datasetId": "urn:x:1"},
                               {"type": "Property", "value": 2, "datasetId": "urn:x:1"}]), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:x:1", "type": "T", "@context": "https://example.org/c.jsonld"}), LD, 503),
    ("POST", E, {}, orjson.dumps({"id": "urn:x:1", "type": "T", "@context": []}), J, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:x:1", "type": "T", "@context": 5}), LD, 400),
    ("POST", E, {}, orjson.dumps({"id": "urn:x:1", "type": "T"}), LD, 400),
    ("POST", E, {}, b"id=1", {"Content-Type": "text/plain"}, 415),
    ("POST", E, {}, b"x" * 300_000, J, 413),
    ("GET", E, {"type": "T"}, None, {"Link": NOCTX}, 503),
    ("GET", E, {"type": "T"}, None, {"Link": '<not a url>; rel="http://www.w3.org/ns/json-ld#context"'}, 400),
    ("GET", E, {"type": "T"}, None, {"Accept": "text/html"}, 406),
    ("GET", E, {"q": "speed>>1"}, None, {}, 400),
    ("GET", E, {"q": "(speed>1"}, None, {}, 400),
    ("GET", E, {"q": 'name=="x'}, None, {}, 400),
    ("GET", E, {"q": "speed~=("}, None, {}, 400),
    ("GET", E, {"q": ""}, None, {}, 400),
    ("GET", E, {"type": "T", "limit": "abc"}, None, {}, 400),
    ("GET", E, {"type": "T", "limit": "-1"}, None, {}, 400),
    ("GET", E, {"type": "T", "limit": "100000"}, None, {}, 400),
    ("GET", E, {"type": "T", "offset": "-5"}, None, {}, 400),
    ("GET", E, {"type": "T", "limit": "0"}, None, {}, 400),
    ("GET", E, {"type": "T", "count": "maybe"}, None, {}, 400),
    ("GET", E, {"type": "T", "options": "fancy"}, None, {}, 400),
    ("GET", E, {"type": "T,"}, None, {}, 400),
    ("GET", E, {"idPattern": "("}, None, {}, 400),
    ("GET", E, {"georel": "near;maxDistance==10"}, None, {}, 400),
    ("GET", E, {"georel": "nearby", "geometry": "Point", "coordinates": "[1,2]"}, None, {}, 400),
    ("GET", E, {"georel": "near", "geometry": "Point", "coordinates": "[1,2]"}, None, {}, 400),
    ("GET", E, {"georel": "near;maxDistance==x", "geometry": "Point", "coordinates": "[1,2]"}, None, {}, 400),
    ("GET", E, {"georel": "within", "geometry": "Circle", "coordinates": "[1,2]"}, None, {}, 400),
    ("GET", E, {"georel": "within", "geometry": "Polygon", "coordinates": "[1,2"}, None, {}, 400),
    ("GET", E, {"georel": "within", "geometry": "Polygon", "coordinates": "[1,2]"}, None, {}, 400),
    ("GET", f"{E}/not-a-urn", {}, None, {}, 400),
    ("GET", f"{E}/urn:ngsi-ld:Vehicle:none", {}, None, {}, 404),
    ("PATCH", f"{V}/attrs", {}, b"[1]", J, 400),
    ("PATCH", f"{V}/attrs/nope", {}, b'{"value": 1}', J, 404),
    ("POST", f"{BASE}/entityOperations/create", {}, b"{}", J, 400),
    ("POST", f"{BASE}/entityOperations/upsert", {}, b"[]", J, 400),
    ("POST", f"{BASE}/entityOperations/query", {}, b'{"type": "NotAQuery"}', J, 400),
    ("GET", f"{BASE}/temporal/entities/{'urn:ngsi-ld:Vehicle:V1'}", {"timerel": "during", "timeAt": "2024-01-01T00:00:00Z"}, None, {}, 400),
    ("GET", f"{BASE}/temporal/entities/{'urn:ngsi-ld:Vehicle:V1'}", {"aggrMethods": "median"}, None, {}, 400),
    ("GET", f"{BASE}/nowhere", {}, None, {}, 404),
    ("DELETE", f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:none", {}, None, {}, 404),
    ("GET", E, {"type": "T"}, None, {"NGSILD-Tenant": "bad tenant!"}, 400),
    ("GET", E, {"type": "T"}, None, {"NGSILD-Tenant": "never-created"}, 404),
]


async def test_bad_requests(client: httpx.AsyncClient) -> None:
    await create(client, vehicle(1))
    failures = []
    for method, path, params, body, headers, status in CASES:
        r = await client.request(method, path, params=params, content=body, headers=headers)
        problem = r.json() if r.content else {}
        ok = r.status_code == status and problem.get("status") == status and problem.get("detail")
        if status != 413:
            ok = ok and str(problem.get("type", "")).startswith("https://uri.etsi.org/ngsi-ld/errors/")
        if not ok or r.status_code >= 500 and status != 503:
            failures.append((method, path, params, r.status_code, r.text[:200]))
    assert not failures, failures


def test_at_least_fifty_kinds() -> None:
    assert len(CASES) >= 50
