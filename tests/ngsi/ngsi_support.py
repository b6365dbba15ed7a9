"""Helpers shared by the NGSI-LD conformance tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

BASE = "/ngsi-ld/v1"
SDM = Path("/work/shared/data/smart-data-models")
TEST_CTX = "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld"
LINK = f'<{TEST_CTX}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
LD = {"Content-Type": "application/ld+json"}


def link(url: str) -> dict[str, str]:
    """Return a Link header naming an @context URL."""
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}


def ld(body: Any, ctx: Any = TEST_CTX) -> bytes:
    """Encode a body with an inline @context (for application/ld+json)."""
    if isinstance(body, list):
        return orjson.dumps([{**b, "@context": ctx} for b in body])
    return orjson.dumps({**body, "@context": ctx})


def vehicle(n: int = 1, speed: float = 50, **attrs: Any) -> dict[str, Any]:
    """A test-suite Vehicle entity in normalized form."""
    return {"id": f"urn:ngsi-ld:Vehicle:V{n}", "type": "Vehicle",
            "speed": {"type": "Property", "value": speed, "observedAt": "2024-01-01T00:00:00.000Z"},
            "brandName": {"type": "Property", "value": "Mercedes"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2.0 + n / 1000, 48.0]}},
            **attrs}


async def create(client: httpx.AsyncClient, entity: dict[str, Any], ctx: Any = TEST_CTX) -> httpx.Response:
    """POST an entity with an inline @context; assert 201."""
    r = await client.post(f"{BASE}/entities", content=ld(entity, ctx), headers=LD)
    assert r.status_code == 201, r.text
    return r
