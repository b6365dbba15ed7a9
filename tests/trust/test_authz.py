"""Authorization matrix: every role x endpoint family x read/write x own/other area, plus authentication."""

from __future__ import annotations

from pathlib import Path

import pytest
from trustcity import C1, C2, G1, G2, SCOPES, T1, T2, City

from citybrain.trust import tokens

# family -> a path of that family (the middleware decides before routing, so a missing route is a 404)
PATHS = {
    "model": "/api/v1/entities", "ingest": "/api/v1/observations", "ngsi": "/ngsi-ld/v1/entities",
    "open311": "/open311/v2/requests.json", "cases": "/api/v1/cases", "situation": "/api/v1/alerts",
    "modes": "/api/v1/modes", "federation": "/api/v1/federation/nodes", "catalog": "/api/v1/catalog",
    "data": "/api/v1/data/air-quality", "ledger": "/api/v1/ledger/entries", "indicators": "/api/v1/indicators",
    "events": "/api/v1/events", "admin": "/api/v1/users", "dashboard": "/api/v1/dashboard/summary",
    "login": "/", "introspection": "/-/settings", "metrics": "/metrics",
}
# The specification, written independently of citybrain/trust/policy.py: role -> family -> "r", "w" or "rw".
OPS = {"login": "r", "dashboard": "r", "model": "r", "ngsi": "r", "open311": "rw", "cases": "rw", "situation": "r",
       "modes": "r", "catalog": "r", "indicators": "r"}
EXPECTED: dict[str, dict[str, str]] = {
    "admin": {f: "rw" for f in PATHS},
    "city_operator": OPS | {"model": "rw", "ingest": "rw", "ngsi": "rw", "situation": "rw", "modes": "rw",
                            "federation": "rw", "ledger": "r", "indicators": "rw", "events": "r",
                            "introspection": "r", "metrics": "r"},
    "command_centre": OPS | {"situation": "rw", "modes": "rw", "federation": "r", "ledger": "r", "events": "r"},
    "supervisor": OPS | {"federation": "r", "ledger": "r", "events": "r"},
    "department_handler": OPS,
    "community_operator": OPS | {"situation": "rw", "federation": "r"},
    "grid_worker": {"login": "r", "dashboard": "r", "model": "r", "ingest": "w", "open311": "rw", "cases": "rw",
                    "situation": "r"},
    "data_officer": {"login": "r", "model": "r", "catalog": "rw", "data": "r", "ledger": "r", "indicators": "r",
                     "events": "r"},
    "auditor": {f: "r" for f in ("login", "dashboard", "model", "ngsi", "open311", "cases", "situation", "modes",
                                 "federation", "catalog", "ledger", "indicators", "events", "introspection",
                                 "metrics")},
    "external_user": {"login": "r", "catalog": "rw", "data": "r", "open311": "rw"},
    "device": {"ingest": "w", "ngsi": "rw"},
    "ops": {"introspection": "r", "metrics": "r"},
}
# families whose requests name a place in the query are confined to the identity's area
AREA_FAMILIES = {"model", "ngsi", "dashboard", "cases", "situation", "modes", "indicators", "ingest", "data",
                 "federation", "login"}


def expect(role: str, family: str, action: str, area: str) -> bool:
    """Return whether the spec allows `role` to `action` the `family` in `area`."""
    if action == "read" and family == "open311":
        return True  # GeoReport v2 reads are public
    ok = action[0] in EXPECTED[role].get(family, "")
    scoped = SCOPES[role][1] is not None
    return ok and not (scoped and area != "own" and family in AREA_FAMILIES)


@pytest.mark.parametrize("role", list(SCOPES))
async def test_matrix(city: City, role: str) -> None:
    wrong = []
    for family, path in PATHS.items():
        for action in ("read", "write"):
            for area in ("own", "other"):
                params = {"place": C1 if area == "own" else C2}
                if action == "read":
                    r = await city.client.get(path, params=params, headers=city.auth(role))
                else:
                    r = await city.client.post(path, params=params, json=[], headers=city.auth(role))
                got = r.status_code not in (401, 403)
                if got != expect(role, family, action, area):
                    wrong.append(f"{role} {action} {family} {area}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


async def test_unauthenticated_and_public(city: City) -> None:
    c = city.client
    assert (await c.get("/-/health")).status_code == 200
    assert (await c.get("/-/version")).status_code == 200
    r = await c.get("/api/v1/entities")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert (await c.get("/")).status_code == 401
    assert (await c.get("/api/v1/ledger/key")).status_code == 200  # public: anyone may verify checkpoints
    assert (await c.get("/api/v1/no-such-family", headers=city.auth("admin"))).status_code == 403  # deny unknown
    assert (await c.get("/api/v1/no-such-family", headers=city.auth("auditor"))).status_code == 403
    assert (await c.get("/api/v1/entities", headers={"X-API-Key": "cb_nope.wrong"})).status_code == 401
    assert (await c.get("/api/v1/entities", headers={"Authorization": "Bearer not.a.jwt"})).status_code == 401
    settings = (await c.get("/-/settings", headers=city.auth("admin"))).json()["settings"]
    assert settings["auth"] == "on" and settings["jwt_secret"] in ("", "***")


async def test_tokens_keys_and_revocation(city: City) -> None:
    c = city.client
    r = await c.post("/api/v1/auth/token", json={"api_key": city.keys["supervisor"]})
    assert r.status_code == 200
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 200
    who = (await c.get("/api/v1/auth/whoami", headers=bearer)).json()
    assert who["role"] == "supervisor" and who["actor"] == "supervisor:supervisor"
    r = await c.post("/api/v1/auth/token", data={"username": "data-officer", "password": "pw-data-officer"})
    assert r.status_code == 200 and r.json()["actor"] == "data_officer:data-officer"
    assert (await c.post("/api/v1/auth/token", json={"username": "data-officer", "password": "x"})).status_code == 401
    # a token signed with another secret, or expired, or with alg none is refused
    forged = tokens.issue("admin", "not-the-secret", 60, "city")
    assert (await c.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
    auth = city.rt.ports.auth
    old = tokens.issue("admin", auth._secret, 60, "city", now=0)
    assert (await c.get("/api/v1/users", headers={"Authorization": f"Bearer {old}"})).status_code == 401
    # revoking the key and disabling the user take effect
    key_id = city.keys["auditor"][3:].split(".")[0]
    await city.rt.execute("user.revoke_key", {"key_id": key_id})
    assert (await c.get("/api/v1/entities", headers=city.auth("auditor"))).status_code == 401
    await city.rt.execute("user.disable", {"name": "supervisor"})
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 401
    listing = (await c.get("/api/v1/users", headers=city.auth("admin"))).text
    assert "scrypt" not in listing and "hash" not in listing


async def test_actor_is_the_authenticated_identity(city: City) -> None:
    r = await city.client.patch(f"/api/v1/entities/{T1}/attrs", json={"intensity": 5},
                                headers=city.auth("city_operator") | {"X-Citybrain-Actor": "mayor:fake"})
    assert r.status_code == 204
    ev = (await city.rt.store.events(type_prefix="command.entity.update"))[-1]
    assert ev.context.actor == "city_operator:city-operator"
    r = await city.client.post("/api/v1/commands/entity.update", json={"id": T1, "attrs": {"intensity": 6}},
                               headers=city.auth("department_handler"))
    assert r.status_code == 403  # department handlers read the model, they do not write it
    r = await city.client.post("/api/v1/commands/user.add", json={"name": "eve", "role": "admin"},
                               headers=city.auth("city_operator"))
    assert r.status_code == 403


async def test_community_operator_sees_only_its_community(city: City) -> None:
    h = city.auth("community_operator")
    c = city.client
    assert (await c.get(f"/api/v1/entities/{T1}", headers=h)).status_code == 200
    assert (await c.get(f"/api/v1/entities/{T2}", headers=h)).status_code == 403
    assert (await c.get(f"/api/v1/places/{C1}", headers=h)).status_code == 200
    assert (await c.get(f"/api/v1/places/{C2}", headers=h)).status_code == 403
    assert (await c.get("/api/v1/places/urn:ngsi-ld:City:bj", headers=h)).status_code == 403
    listed = (await c.get("/api/v1/entities", params={"type": "TrafficFlowObserved"}, headers=h)).json()
    assert [e["id"] for e in listed] == [T1]  # the listing was confined to the community
    tree = (await c.get("/api/v1/places", headers=h)).json()
    assert tree[0]["id"] == C1
    assert (await c.get(f"/community/{C2}", headers=h)).status_code == 403
    everything = (await c.get("/api/v1/entities", params={"type": "TrafficFlowObserved"},
                              headers=city.auth("city_operator"))).json()
    assert {e["id"] for e in everything} == {T1, T2}
    # case, alert and map listings without a place are confined to the community too
    for grid in (G1, G2):
        r = await c.post("/api/v1/cases", json={"category": "C0110", "description": "street light out", "place": grid},
                         headers=city.auth("city_operator"))
        assert r.status_code == 201, r.text
    mine = (await c.get("/api/v1/cases", headers=h)).json()
    assert [x["place"] for x in mine] == [G1]
    assert len((await c.get("/api/v1/cases", headers=city.auth("city_operator"))).json()) == 2
    cells = (await c.get("/api/v1/map/places", params={"level": "Grid"}, headers=h)).json()["features"]
    assert [f["id"] for f in cells] == [G1]
    assert (await c.get("/api/v1/alerts", headers=h)).status_code == 200


async def test_bootstrap_admin_key_file(city: City) -> None:
    path = city.rt.settings.store + ".admin-key"
    key = Path(path).read_text().strip()  # noqa: ASYNC240
    assert (await city.client.get("/api/v1/users", headers={"X-API-Key": key})).status_code == 200
