"""NGSI-LD tenants (NGSILD-Tenant) on a node of three processes: one tenant, whichever process serves it.

A tenant is a PostgreSQL schema of the node's database behind a small runtime per process; the tenant's
runtimes on the node's processes share one bus (the node's NATS server, on a stream and subject prefix of the
tenant's own), so an entity or subscription changed through one process is current on the others and each
change is notified once. On one process with SQLite a tenant is the file <store>.<tenant>.db beside the
node's, on the in-process bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest
from scaleout.node import Node, delete_bus, fresh_token
from scaleout.receiver import Receiver
from services import PG_URL

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

SETTLE = 2.0


@pytest.fixture
def tenant(node: Node) -> Iterator[str]:
    """A tenant name of this test. Afterwards the node's processes stop, then the tenant's schema (tenant
    schemas live in the database, beside the node's) and its stream and lease bucket are deleted; on SQLite
    the tenant's file <store>.<tenant>.db goes with the working directory."""
    name = fresh_token("ten")
    yield name
    node.close()
    if node.on_postgres:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "cb_tenant_{name}" CASCADE')
    if node.on_nats:
        asyncio.run(delete_bus(f"{node.stream}_T_{name}"))


@pytest.mark.timeout(120)
def test_a_tenant_is_one_tenant_on_every_process(node: Node, tenant: str) -> None:
    h = {"NGSILD-Tenant": tenant}
    eid = f"urn:ngsi-ld:Vehicle:{fresh_token('v')}"
    r = node.at(0).post("/ngsi-ld/v1/entities", headers=h,
                        json={"id": eid, "type": "Vehicle", "speed": {"type": "Property", "value": 0}})
    assert r.status_code == 201, r.text
    for i in range(3):
        got = node.at(i).get(f"/ngsi-ld/v1/entities/{eid}", headers=h)
        assert got.status_code == 200, f"p{i + 1}: {got.status_code} {got.text}"
        assert node.at(i).get(f"/ngsi-ld/v1/entities/{eid}").status_code == 404  # not in the default tenant
    again = node.at(1).post("/ngsi-ld/v1/entities", headers=h, json={"id": eid, "type": "Vehicle"})
    assert again.status_code == 409, again.text

    with Receiver() as rx:
        sub = {"type": "Subscription", "entities": [{"type": "Vehicle", "id": eid}], "watchedAttributes": ["speed"],
               "notification": {"endpoint": {"uri": rx.url, "accept": "application/json"}, "attributes": ["speed"]}}
        r = node.at(2).post("/ngsi-ld/v1/subscriptions", headers=h, json=sub)
        assert r.status_code == 201, r.text
        sub_path = r.headers["Location"]
        time.sleep(SETTLE)
        baseline = len(rx.received())
        for step, i in enumerate((0, 1, 2), start=1):
            r = node.at(i).patch(f"/ngsi-ld/v1/entities/{eid}/attrs", headers=h,
                                 json={"speed": {"type": "Property", "value": 10 * step}})
            assert r.status_code == 204, r.text
            rx.wait(baseline + step, timeout=10)
            time.sleep(0.5)
            speeds = rx.values("speed")[baseline:]
            assert speeds == [10 * s for s in range(1, step + 1)], (
                f"after the update on p{i + 1}: notified speeds {speeds} (want one notification per update)")
        r = node.at(0).delete(sub_path, headers=h)
        assert r.status_code == 204, r.text
        time.sleep(SETTLE)
        before = len(rx.received())
        for i in range(3):
            r = node.at(i).patch(f"/ngsi-ld/v1/entities/{eid}/attrs", headers=h,
                                 json={"speed": {"type": "Property", "value": 1000 + i}})
            assert r.status_code == 204, r.text
        time.sleep(SETTLE)
        assert rx.values("speed")[before:] == [], "notified after the subscription was deleted"

    r = node.at(1).delete(f"/ngsi-ld/v1/entities/{eid}", headers=h)
    assert r.status_code == 204, r.text
    for i in range(3):
        gone = node.at(i).get(f"/ngsi-ld/v1/entities/{eid}", headers=h)
        assert gone.status_code == 404, f"p{i + 1} still serves the deleted entity: {gone.status_code}"
        patch = node.at(i).patch(f"/ngsi-ld/v1/entities/{eid}/attrs", headers=h,
                                 json={"speed": {"type": "Property", "value": 1}})
        assert patch.status_code == 404, f"p{i + 1}: PATCH of a deleted entity answered {patch.status_code}"
    r = node.at(2).post("/ngsi-ld/v1/entities", headers=h, json={"id": eid, "type": "Vehicle"})
    assert r.status_code == 201, f"re-creating the deleted entity on p3: {r.status_code} {r.text}"
