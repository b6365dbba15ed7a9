"""Authentication on a node of three processes started together: one bootstrap administrator, and keys and
tokens that any process issues work on every other one (shared secret), revocation reaches all of them."""

from __future__ import annotations

from typing import Any

import pytest
from scaleout.node import Node, wait_for

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

NODE_OPTIONS: dict[str, Any] = {"auth": "on"}
REVOCATION_S = 5.0  # the identity cache keeps an entry about 2 s


def bearer(credential: str) -> dict[str, str]:
    """Return the header that presents a token or API key."""
    return {"Authorization": f"Bearer {credential}"}


def run(node: Node, i: int, command: str, payload: dict[str, Any], key: str) -> Any:
    """Run a command on process i with `key`; return its result."""
    r = node.at(i).post(f"/api/v1/commands/{command}", json=payload, headers=bearer(key))
    assert r.status_code == 200, f"{command} on p{i + 1}: {r.status_code} {r.text}"
    return r.json()["result"]


@pytest.mark.timeout(90)
def test_bootstrap_key_tokens_and_revocation_work_across_processes(node: Node) -> None:
    path = node.node_file(".admin-key")  # var/<node id>.admin-key (PostgreSQL), <store>.admin-key (SQLite)
    assert path.exists(), f"no bootstrap admin key at {path}: {sorted(p.name for p in node.workdir.rglob('*'))}"
    admin = path.read_text().strip()
    for i in range(3):
        r = node.at(i).get("/api/v1/entities")
        assert r.status_code == 401, f"p{i + 1} without credentials: {r.status_code}"
        who = node.at(i).get("/api/v1/auth/whoami", headers=bearer(admin))
        assert who.status_code == 200 and who.json()["role"] == "admin", f"p{i + 1}: {who.status_code} {who.text}"
    users = node.at(0).get("/api/v1/users", headers=bearer(admin)).json()
    assert [u["name"] for u in users] == ["admin"], users
    r = node.at(0).get("/api/v1/events", params={"type": "command.user.", "limit": 100}, headers=bearer(admin))
    bootstrap = [e["type"] for e in r.json()]
    assert bootstrap == ["command.user.add", "command.user.key"], f"bootstrap ran more than once: {bootstrap}"

    # a token issued by one process is accepted by the others (one shared secret)
    r = node.at(0).post("/api/v1/auth/token", json={"api_key": admin})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    for i in (1, 2):
        who = node.at(i).get("/api/v1/auth/whoami", headers=bearer(token))
        assert who.status_code == 200, f"p{i + 1} rejects p1's token: {who.status_code} {who.text}"

    # an identity made on p2 with a key issued on p3 works on p1; revoked on p1, it stops working everywhere
    run(node, 1, "user.add", {"name": "ops-wang", "role": "city_operator"}, admin)
    issued = run(node, 2, "user.key", {"name": "ops-wang", "label": "scaleout"}, token)
    key = issued["key"]
    for i in range(3):
        who = node.at(i).get("/api/v1/auth/whoami", headers=bearer(key))
        assert who.status_code == 200 and who.json()["name"] == "ops-wang", f"p{i + 1}: {who.status_code} {who.text}"
    run(node, 0, "user.revoke_key", {"key_id": issued["key_id"]}, admin)

    def rejected_everywhere() -> list[int]:
        codes = [node.at(i).get("/api/v1/auth/whoami", headers=bearer(key)).status_code for i in range(3)]
        return codes if codes == [401, 401, 401] else []

    wait_for(rejected_everywhere, REVOCATION_S, "the revoked key to be refused by every process")
