"""NGSI-LD entities on a node of three processes: any process answers any request, concurrent writes all land."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from scaleout.node import Node, fresh_token

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def vehicle(speed: float) -> tuple[str, dict[str, Any]]:
    """Return a new entity id and its NGSI-LD body."""
    eid = f"urn:ngsi-ld:Vehicle:{fresh_token('v')}"
    return eid, {"id": eid, "type": "Vehicle", "speed": {"type": "Property", "value": speed}}


def problem_type(r: httpx.Response) -> str:
    """Return the ProblemDetails type of an error answer."""
    body: dict[str, Any] = r.json()
    return str(body.get("type"))


@pytest.mark.timeout(60)
def test_create_patch_get_delete_each_on_another_process(node: Node) -> None:
    eid, body = vehicle(10)
    path = f"/ngsi-ld/v1/entities/{eid}"
    r = node.at(0).post("/ngsi-ld/v1/entities", json=body)
    assert r.status_code == 201, r.text
    r = node.at(1).patch(f"{path}/attrs", json={"speed": {"type": "Property", "value": 20}})
    assert r.status_code == 204, r.text
    r = node.at(2).get(path)
    assert r.status_code == 200, r.text
    assert r.json()["speed"]["value"] == 20
    for i in (1, 2):  # the id exists: creating it again on any other process is AlreadyExists
        r = node.at(i).post("/ngsi-ld/v1/entities", json=body)
        assert r.status_code == 409, f"p{i + 1}: {r.status_code} {r.text}"
        assert problem_type(r) == ERRORS + "AlreadyExists", r.text
    r = node.at(2).delete(path)
    assert r.status_code == 204, r.text
    for i in range(3):  # the creator and the patcher must not answer from what they saw before
        r = node.at(i).get(path)
        assert r.status_code == 404, f"p{i + 1} after delete: {r.status_code} {r.text}"
        assert problem_type(r) == ERRORS + "ResourceNotFound", r.text
        r = node.at(i).patch(f"{path}/attrs", json={"speed": {"type": "Property", "value": 30}})
        assert r.status_code == 404, f"p{i + 1} PATCH after delete: {r.status_code} {r.text}"
    # the id is free again: created anew on the second process, read back new on the first
    r = node.at(1).post("/ngsi-ld/v1/entities", json=body | {"speed": {"type": "Property", "value": 40}})
    assert r.status_code == 201, r.text
    for i in range(3):
        r = node.at(i).get(path)
        assert r.status_code == 200 and r.json()["speed"]["value"] == 40, f"p{i + 1}: {r.status_code} {r.text}"


@pytest.mark.timeout(120)
def test_400_concurrent_patches_of_one_attribute_all_land_in_history(node: Node) -> None:
    eid, body = vehicle(0)
    r = node.rr.post("/ngsi-ld/v1/entities", json=body)
    assert r.status_code == 201, r.text
    node.wait_all(lambda c: c.get(f"/ngsi-ld/v1/entities/{eid}").status_code == 200, what="the new entity")

    def patch(value: int) -> tuple[int, int, str]:
        resp = node.rr.patch(f"/ngsi-ld/v1/entities/{eid}/attrs", json={"speed": {"type": "Property", "value": value}})
        return value, resp.status_code, resp.text[:200]

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(patch, range(1, 401)))
    statuses = Counter(status for _, status, _ in results)
    failures = [(v, s, t) for v, s, t in results if s != 204]
    assert statuses == Counter({204: 400}), f"statuses {dict(statuses)}; first failures: {failures[:5]}"
    acknowledged = {v for v, s, _ in results if s == 204}

    r = node.rr.get(f"/ngsi-ld/v1/temporal/entities/{eid}", params={"attrs": "speed", "options": "temporalValues"})
    assert r.status_code == 200, r.text
    rows = r.json()["speed"]["values"]  # [[value, observedAt], …] oldest first
    seen = Counter(v for v, _ in rows)
    lost = sorted(acknowledged - set(seen))
    doubled = sorted(v for v, n in seen.items() if n > 1)
    assert not lost, f"{len(lost)} of 400 acknowledged PATCHes are not in the history (overwritten?): {lost[:20]}"
    assert not doubled, f"values recorded twice: {doubled[:20]}"
    assert len(rows) == len(set(seen)) and set(seen) - acknowledged <= {0}, rows[:5]
    # the current value is one of the acknowledged writes, the same on every process
    current = node.wait_all(lambda c: c.get(f"/ngsi-ld/v1/entities/{eid}").json()["speed"]["value"],
                            what="the current speed")
    assert len(set(current)) == 1 and current[0] in acknowledged, current
