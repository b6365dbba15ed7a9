"""Conformance: JSON-LD @context handling (ETSI GS CIM 009 §5.5.7, §6.3.5; Smart Data Models) — 8 cases (27 with parameters).

Every normalized and keyValues Smart Data Models example is accepted and comes back with the same short
names and values; FloodMonitoring's normalized example (attribute type "string") is rejected with
BadRequestData; terms are stored by their short names in the city model; @context from the Link header
or the body; uncached context URLs give 503 LdContextNotAvailable; other core versions resolve to the
built-in core; the cached contexts are listed at /jsonldContexts.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from ngsi_support import BASE, LD, SDM, TEST_CTX, link

from citybrain.runtime import CityBrain

MODELS = sorted(p.name for p in SDM.iterdir() if (p / "example-normalized.jsonld").exists())


def _load(model: str, name: str) -> dict:
    return orjson.loads((SDM / model / name).read_bytes())


async def _roundtrip(client: httpx.AsyncClient, body: dict, key_values: bool) -> dict:
    r = await client.post(f"{BASE}/entities", content=orjson.dumps(body), headers=LD)
    assert r.status_code == 201, r.text
    query = {"type": "Query", "entities": [{"type": body["type"], "id": body["id"]}], "@context": body["@context"]}
    r = await client.post(f"{BASE}/entityOperations/query", params={"options": "keyValues"} if key_values else {},
                          content=orjson.dumps(query), headers=LD)
    assert r.status_code == 200, r.text
    (got,) = r.json()
    return got


@pytest.mark.parametrize("model", [m for m in MODELS if m != "FloodMonitoring"])
async def test_normalized_examples_round_trip(client: httpx.AsyncClient, model: str) -> None:
    body = _load(model, "example-normalized.jsonld")
    got = await _roundtrip(client, body, key_values=False)
    sent = {k: v for k, v in body.items() if k != "@context"}
    assert set(got) == set(sent), model
    for name, attr in sent.items():
        if isinstance(attr, dict) and name not in ("id", "type"):
            key = "object" if attr["type"] == "Relationship" else "value"
            assert got[name][key] == attr[key], (model, name)
            assert got[name]["type"] == attr["type"]


@pytest.mark.parametrize("model", MODELS)
async def test_key_values_examples_round_trip(client: httpx.AsyncClient, model: str) -> None:
    body = _load(model, "example.jsonld")
    got = await _roundtrip(client, body, key_values=True)
    assert got == {k: v for k, v in body.items() if k != "@context"}, model


async def test_flood_monitoring_normalized_is_rejected(client: httpx.AsyncClient) -> None:
    body = _load("FloodMonitoring", "example-normalized.jsonld")
    r = await client.post(f"{BASE}/entities", content=orjson.dumps(body), headers=LD)
    assert r.status_code == 400 and r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert "floodLevelStatus" in r.json()["detail"] or "string" in r.json()["detail"]


async def test_short_names_in_the_city_model(client: httpx.AsyncClient, runtime: CityBrain) -> None:
    body = _load("AirQualityObserved", "example-normalized.jsonld")
    await client.post(f"{BASE}/entities", content=orjson.dumps(body), headers=LD)
    stored = await runtime.store.get_entity(body["id"])
    assert stored is not None and stored.type == "AirQualityObserved" and "no2" in stored.attrs and "temperature" in stored.attrs
    assert not any(a.startswith("https://smartdatamodels.org") for a in stored.attrs)


async def test_link_header_and_unknown_terms(client: httpx.AsyncClient) -> None:
    body = {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "colour": {"type": "Property", "value": "red"}}
    r = await client.post(f"{BASE}/entities", json=body, headers=link(TEST_CTX))
    assert r.status_code == 201
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Thing:1")).json()
    assert got["colour"]["value"] == "red" and got["type"] == "Thing"  # default-context terms stay short


async def test_uncached_context_is_503(client: httpx.AsyncClient) -> None:
    url = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-non-existing.jsonld"
    r = await client.get(f"{BASE}/entities", params={"type": "T"}, headers=link(url))
    assert r.status_code == 503 and r.json()["type"].endswith("LdContextNotAvailable") and url in r.json()["detail"]
    r = await client.post(f"{BASE}/entities", content=orjson.dumps({"id": "urn:x:1", "type": "T", "@context": "https://example.org/ctx.jsonld"}),
                          headers=LD)
    assert r.status_code == 503


async def test_other_core_versions_resolve(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{BASE}/entities", params={"type": "T"},
                         headers=link("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld"))
    assert r.status_code == 200


async def test_cached_contexts_listed(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{BASE}/jsonldContexts", params={"details": "true"})
    urls = {c["URL"] for c in r.json()}
    assert TEST_CTX in urls and all(c["kind"] == "Cached" for c in r.json())
    r = await client.get(f"{BASE}/jsonldContexts/ngsi-ld-core-context-v1.8.jsonld")
    assert r.status_code == 200 and "@context" in r.json()
    assert (await client.delete(f"{BASE}/jsonldContexts/ngsi-ld-core-context-v1.8.jsonld")).status_code == 400
