"""NGSILD-Tenant on a PostgreSQL store: each tenant is the schema cb_tenant_<name> of the same database.

Isolation of entities, history and subscriptions (documents and notifications) between tenants and the
default tenant; the same migrations in every tenant schema; a tenant created by one node is opened lazily by
another; unknown tenants are 404 and are not created by reads; names a schema cannot carry are 400.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
import pytest
from ngsi_support import BASE, LINK, ld, vehicle
from services import PG_URL, require_service

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.ngsi.tenants import SCHEMA_PREFIX, Tenants
from citybrain.runtime import CityBrain
from citybrain.store.postgres import schema_url
from citybrain.store.schema import POSTGRES_MIGRATIONS

pytestmark = pytest.mark.postgres

V1 = "urn:ngsi-ld:Vehicle:V1"
H = {"Link": LINK}
LD = {"Content-Type": "application/ld+json"}


@dataclass
class PgNode:
    """A node whose main store is a fresh PostgreSQL schema, its client, and the tenant names to drop."""

    url: str
    main_schema: str
    rt: CityBrain
    client: httpx.AsyncClient
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def tenant(self, stem: str) -> str:
        """A tenant name unique to this test (the schemas live in the shared test database)."""
        return f"{stem}{self.suffix}"

    @property
    def tenants(self) -> Tenants:
        found: Tenants = self.rt.ports.ngsi_tenants
        return found


def sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the test database (outside citybrain) and return its rows."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def main_url() -> Iterator[tuple[str, str, str]]:
    """(url, main schema, suffix): a fresh main schema; it and every cb_tenant_*<suffix> schema are dropped after."""
    parts = urlsplit(PG_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    suffix = uuid.uuid4().hex[:10]
    schema = f"t_{suffix}"
    sql(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(PG_URL, schema), schema, suffix
    finally:
        for (name,) in sql("SELECT nspname FROM pg_namespace WHERE nspname = %s OR "
                           "(starts_with(nspname, %s) AND right(nspname, %s) = %s)",
                           schema, SCHEMA_PREFIX, len(suffix), suffix):
            sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def start_node(url: str) -> tuple[CityBrain, httpx.AsyncClient]:
    rt = CityBrain(Settings(store=url, bus="memory", max_body_bytes=200_000))
    await rt.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt, manage_runtime=False)),
                               base_url="http://test")
    return rt, client


@pytest.fixture
async def node(main_url: tuple[str, str, str]) -> AsyncIterator[PgNode]:
    url, schema, suffix = main_url
    rt, client = await start_node(url)
    try:
        yield PgNode(url, schema, rt, client, suffix)
    finally:
        await client.aclose()
        await rt.stop()


async def post_entity(node: PgNode, entity: dict[str, Any], tenant: str | None) -> httpx.Response:
    headers = {**LD, **({"NGSILD-Tenant": tenant} if tenant else {})}
    return await node.client.post(f"{BASE}/entities", content=ld(entity), headers=headers)


def th(tenant: str | None) -> dict[str, str]:
    return {**H, **({"NGSILD-Tenant": tenant} if tenant else {})}


async def test_entities_and_history_are_isolated(node: PgNode) -> None:
    a, b = node.tenant("a"), node.tenant("City-B")  # case and '-' are kept (quoted schema names)
    assert (await post_entity(node, vehicle(1, 10), a)).status_code == 201
    r = await node.client.patch(f"{BASE}/entities/{V1}/attrs/speed", headers=th(a),
                                json={"value": 20, "observedAt": "2024-01-01T01:00:00Z"})
    assert r.status_code == 204, r.text
    assert (await post_entity(node, vehicle(1, 99), b)).status_code == 201
    assert (await post_entity(node, vehicle(2, 5), None)).status_code == 201

    async def speed(tenant: str | None) -> Any:
        r = await node.client.get(f"{BASE}/entities/{V1}", headers=th(tenant), params={"options": "keyValues"})
        return r.json()["speed"] if r.status_code == 200 else r.status_code

    assert (await speed(a), await speed(b), await speed(None)) == (20, 99, 404)
    for tenant, ids in ((a, [V1]), (b, [V1]), (None, ["urn:ngsi-ld:Vehicle:V2"])):
        r = await node.client.get(f"{BASE}/entities", params={"type": "Vehicle"}, headers=th(tenant))
        assert [e["id"] for e in r.json()] == ids
    hist = await node.client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=th(a))
    assert [i["value"] for i in hist.json()["speed"]] == [10, 20]
    hist = await node.client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=th(b))
    assert [i["value"] for i in hist.json()["speed"]] == [99]
    # the rows really are in the tenants' own schemas, not in the main one
    assert sql(f'SELECT id FROM "{SCHEMA_PREFIX}{a}".entities') == [(V1,)]
    assert sql(f"SELECT count(*) FROM \"{SCHEMA_PREFIX}{a}\".history WHERE name LIKE '%%speed'") == [(2,)]
    assert sql(f"SELECT count(*) FROM \"{SCHEMA_PREFIX}{b}\".history WHERE name LIKE '%%speed'") == [(1,)]
    assert sql(f"SELECT id FROM {node.main_schema}.entities WHERE type LIKE '%%Vehicle'") == [
        ("urn:ngsi-ld:Vehicle:V2",)]
    assert await node.rt.store.history_count(V1) == 0


async def test_every_tenant_schema_has_the_same_migrations(node: PgNode) -> None:
    a = node.tenant("m")
    assert (await post_entity(node, vehicle(1), a)).status_code == 201
    versions = sql(f'SELECT version FROM "{SCHEMA_PREFIX}{a}".schema_migrations ORDER BY version')
    assert [v for (v,) in versions] == [v for v, _ in POSTGRES_MIGRATIONS]
    tables = {t for (t,) in sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                f"{SCHEMA_PREFIX}{a}")}
    assert {"entities", "attrs", "history", "events", "docs", "deadletters"} <= tables


async def test_subscriptions_and_notifications_are_isolated(node: PgNode) -> None:
    a, b = node.tenant("sa"), node.tenant("sb")
    for t in (a, b):
        assert (await post_entity(node, vehicle(1, 10), t)).status_code == 201
    sub = {"type": "Subscription", "entities": [{"type": "Vehicle"}], "watchedAttributes": ["speed"],
           "notification": {"endpoint": {"uri": "http://sink.test/n"}}}
    r = await node.client.post(f"{BASE}/subscriptions", content=ld(sub), headers={**LD, "NGSILD-Tenant": a})
    assert r.status_code == 201, r.text
    sub_id = r.headers["Location"].rsplit("/", 1)[-1]
    listed = {t: (await node.client.get(f"{BASE}/subscriptions", headers=th(t))).json() for t in (a, b, None)}
    assert [s["id"] for s in listed[a]] == [sub_id] and listed[b] == [] and listed[None] == []
    assert (await node.client.get(f"{BASE}/subscriptions/{sub_id}", headers=th(b))).status_code == 404
    assert (await node.client.get(f"{BASE}/subscriptions/{sub_id}", headers=th(None))).status_code == 404

    got: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        got.extend(e["speed"]["value"] for e in orjson.loads(request.content)["data"])
        return httpx.Response(200)

    notifier = node.tenants.open[a].ports.ngsi_notifier
    notifier.client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    for tenant, speed in ((b, 70), (None, 80), (a, 60)):  # only the change in tenant a notifies
        r = await node.client.patch(f"{BASE}/entities/{V1}/attrs/speed", headers=th(tenant),
                                    json={"value": speed, "observedAt": "2024-01-02T00:00:00Z"})
        assert r.status_code == (404 if tenant is None else 204), r.text
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert got == [60]


async def test_unknown_tenant_and_lazy_open_by_another_node(node: PgNode) -> None:
    a = node.tenant("lazy")
    r = await node.client.get(f"{BASE}/entities", params={"type": "Vehicle"}, headers=th(a))
    assert r.status_code == 404 and r.json()["type"].endswith("ResourceNotFound")
    assert sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", SCHEMA_PREFIX + a) == []  # reads create nothing
    assert (await post_entity(node, vehicle(1, 33), a)).status_code == 201
    other, client = await start_node(node.url)  # a second node on the same database
    try:
        tenants: Tenants = other.ports.ngsi_tenants
        assert a not in tenants.open and await tenants.exists(a)
        r = await client.get(f"{BASE}/entities/{V1}", params={"options": "keyValues"}, headers=th(a))
        assert r.status_code == 200 and r.json()["speed"] == 33
        assert a in tenants.open
    finally:
        await client.aclose()
        await other.stop()


async def test_tenant_names_a_schema_cannot_carry_are_400(node: PgNode) -> None:
    too_long = "x" * (63 - len(SCHEMA_PREFIX) + 1)  # valid NGSILD-Tenant, but no PostgreSQL name that long
    for name in (too_long, "bad name!", 'q"uote'):
        r = await post_entity(node, vehicle(1), name)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["type"].endswith("BadRequestData")
    longest = node.tenant("y" * (63 - len(SCHEMA_PREFIX) - 10))
    assert len(longest) == 63 - len(SCHEMA_PREFIX)
    assert (await post_entity(node, vehicle(1), longest)).status_code == 201


async def test_temporal_writes_in_a_tenant(node: PgNode) -> None:
    a = node.tenant("tw")

    def speed(value: float, hour: int) -> dict[str, Any]:
        return {"type": "Property", "value": value, "observedAt": f"2024-01-01T0{hour}:00:00Z"}

    body = {"id": V1, "type": "Vehicle", "speed": [speed(20, 2), speed(10, 1)]}
    r = await node.client.post(f"{BASE}/temporal/entities", content=ld(body), headers={**LD, "NGSILD-Tenant": a})
    assert r.status_code == 201, r.text
    r = await node.client.post(f"{BASE}/temporal/entities", content=ld({**body, "speed": [speed(30, 3)]}),
                               headers={**LD, "NGSILD-Tenant": a})
    assert r.status_code == 204, r.text
    r = await node.client.post(f"{BASE}/temporal/entities/{V1}/attrs", json={"speed": speed(5, 0)}, headers=th(a))
    assert r.status_code == 204, r.text
    hist = await node.client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=th(a))
    assert [i["value"] for i in hist.json()["speed"]] == [5, 10, 20, 30]
    now = await node.client.get(f"{BASE}/entities/{V1}", params={"options": "keyValues"}, headers=th(a))
    assert now.json()["speed"] == 30
    assert (await node.client.get(f"{BASE}/temporal/entities/{V1}", headers=th(None))).status_code == 404
    assert await node.rt.store.history_count(V1) == 0
