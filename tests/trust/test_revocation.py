"""Finding 6 of issue #20: revoking an API key ends the access tokens obtained with it, on every process of the
node within the documented two seconds (not when the token expires an hour later)."""

from __future__ import annotations

import asyncio
import time

from trustcity import City

from citybrain.trust import tokens
from citybrain.trust.identity import Directory


async def _token(city: City, role: str) -> dict[str, str]:
    r = await city.client.post("/api/v1/auth/token", json={"api_key": city.keys[role]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_revoking_a_key_ends_its_tokens(city: City) -> None:
    c = city.client
    bearer = await _token(city, "auditor")
    cookie = {"Cookie": f"citybrain_token={bearer['Authorization'][7:]}"}
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 200
    assert (await c.get("/api/v1/entities", headers=cookie)).status_code == 200
    key_id = city.keys["auditor"][3:].split(".")[0]
    await city.rt.execute("user.revoke_key", {"key_id": key_id}, city.rt.context("admin:test"))
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 401
    assert (await c.get("/api/v1/entities", headers=cookie)).status_code == 401
    assert (await c.get("/api/v1/stream", params={"access_token": bearer["Authorization"][7:]})).status_code == 401


async def test_revoke_tokens_of_an_identity(city: City) -> None:
    c = city.client
    bearer = await _token(city, "supervisor")
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 200
    await city.rt.execute("user.revoke_tokens", {"name": "supervisor"}, city.rt.context("admin:test"))
    assert (await c.get("/api/v1/entities", headers=bearer)).status_code == 401
    assert (await c.get("/api/v1/entities", headers=city.auth("supervisor"))).status_code == 200  # keys still work
    await asyncio.sleep(1.05)  # tokens issued after the revocation work (iat has one-second resolution)
    assert (await c.get("/api/v1/entities", headers=await _token(city, "supervisor"))).status_code == 200


async def test_another_process_sees_the_revocation_within_two_seconds(city: City) -> None:
    """A second Directory stands for another process of the node: its cache was warm before the revocation."""
    other = Directory(city.rt)
    claims = tokens.decode((await _token(city, "auditor"))["Authorization"][7:], city.rt.ports.auth._secret)
    assert not await other.token_revoked(claims)
    key_id = city.keys["auditor"][3:].split(".")[0]
    await city.rt.execute("user.revoke_key", {"key_id": key_id}, city.rt.context("admin:test"))
    t0 = time.monotonic()
    while not await other.token_revoked(claims):
        assert time.monotonic() - t0 < 2.1, "still accepted after 2 s"
        await asyncio.sleep(0.1)
