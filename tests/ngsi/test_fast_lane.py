"""The app's fast lane (api.app.FastRoutes) answers the hot NGSI-LD entity routes exactly as the router would.

Cases: the lane is really used (the router's copies removed, the routes still answer), answers equal the router's
for reads, attribute patches and errors (bad URN, unknown entity, unknown attribute, bad JSON, ld+json without
@context), trailing slashes, tenants, and authentication and authorisation still apply in front of the lane.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain

E = "urn:ngsi-ld:Vehicle:F1"
BASE = "/ngsi-ld/v1/entities"
JSON = {"Content-Type": "application/json"}


def vehicle() -> dict[str, Any]:
    return {"id": E, "type": "Vehicle", "speed": {"type": "Property", "value": 10},
            "brandName": {"type": "Property", "value": "Acme"}}


def without_router_copies(app: Any) -> Any:
    """Drop the router's entity GET/PATCH routes so that only the fast lane can answer them."""
    hot = {("GET", "/ngsi-ld/v1/entities/{entity_id}"), ("PATCH", "/ngsi-ld/v1/entities/{entity_id}/attrs"),
           ("PATCH", "/ngsi-ld/v1/entities/{entity_id}/attrs/{attr}")}
    keep = []
    for r in app.router.routes:
        methods = getattr(r, "methods", None) or set()
        path = getattr(r, "path", "").rstrip("/")
        if any((m, path) in hot for m in methods):
            continue
        keep.append(r)
    app.router.routes[:] = keep
    return app


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    rt = CityBrain(Settings(store=str(tmp_path / "lane.db"), bus="memory"))
    await rt.start()
    fast_only = without_router_copies(create_app(rt, manage_runtime=False))
    router_only = create_app(rt, manage_runtime=False)
    router_only.state.fast_routes.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fast_only), base_url="http://t") as a, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=router_only), base_url="http://t") as b:
        assert (await a.post(BASE, json=vehicle())).status_code == 201
        yield a, b
    await rt.stop()


async def test_fast_lane_registers_the_hot_routes(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    fast, _ = clients
    r = await fast.get(f"{BASE}/{E}")
    assert r.status_code == 200 and r.json()["speed"]["value"] == 10


@pytest.mark.parametrize(("method", "path", "body", "headers"), [
    ("GET", f"{BASE}/{E}", None, {}),
    ("GET", f"{BASE}/{E}/", None, {}),
    ("GET", f"{BASE}/{E}?options=keyValues&attrs=speed", None, {}),
    ("GET", f"{BASE}/{E}", None, {"Accept": "application/ld+json"}),
    ("GET", f"{BASE}/notaurn", None, {}),
    ("GET", f"{BASE}/urn:ngsi-ld:Vehicle:missing", None, {}),
    ("GET", f"{BASE}/{E}?options=bogus", None, {}),
    ("GET", f"{BASE}/{E}", None, {"Accept": "text/csv"}),
    ("PATCH", f"{BASE}/{E}/attrs/speed", b'{"value": 11}', JSON),
    ("PATCH", f"{BASE}/{E}/attrs/speed/", b'{"value": 12}', JSON),
    ("PATCH", f"{BASE}/{E}/attrs/nothere", b'{"value": 1}', JSON),
    ("PATCH", f"{BASE}/{E}/attrs/speed", b'{"value": 1', JSON),
    ("PATCH", f"{BASE}/{E}/attrs/speed", b'{"value": 1}', {"Content-Type": "application/ld+json"}),
    ("PATCH", f"{BASE}/{E}/attrs", b'{"speed": {"type": "Property", "value": 3}, "nope": {"value": 1}}', JSON),
    ("PATCH", f"{BASE}/{E}/attrs", b'[1]', JSON),
    ("PATCH", f"{BASE}/{E}/attrs", b'{"speed": 1}', {"Content-Type": "text/plain"}),
])
async def test_same_answer_as_the_router(clients: tuple[httpx.AsyncClient, httpx.AsyncClient], method: str,
                                         path: str, body: bytes | None, headers: dict[str, str]) -> None:
    fast, router = clients
    a = await fast.request(method, path, content=body, headers=headers)
    b = await router.request(method, path, content=body, headers=headers)
    assert a.status_code == b.status_code
    assert a.headers.get("content-type") == b.headers.get("content-type")
    assert a.headers.get("link") == b.headers.get("link")
    assert a.content == b.content
    if a.status_code >= 400:
        assert a.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")


async def test_a_patch_through_the_lane_is_stored_with_history(
        clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    fast, router = clients
    r = await fast.patch(f"{BASE}/{E}/attrs/speed", content=b'{"value": 42, "observedAt": "2026-01-01T00:00:00Z"}',
                         headers=JSON)
    assert r.status_code == 204
    got = await router.get(f"{BASE}/{E}?options=keyValues")
    assert got.json()["speed"] == 42
    temporal = await router.get(f"/ngsi-ld/v1/temporal/entities/{E}?attrs=speed")
    assert any(i["value"] == 42 for i in temporal.json()["speed"])


async def test_authentication_still_guards_the_lane(tmp_path: Path) -> None:
    rt = CityBrain(Settings(store=str(tmp_path / "auth.db"), bus="memory", auth="on"))
    await rt.start()
    try:
        app = without_router_copies(create_app(rt, manage_runtime=False))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get(f"{BASE}/{E}")).status_code == 401
            r = await c.patch(f"{BASE}/{E}/attrs/speed", content=b'{"value": 1}', headers=JSON)
            assert r.status_code == 401
    finally:
        await rt.stop()
