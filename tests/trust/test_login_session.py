"""Findings 7 and 8 of issue #20: the login page goes back only to a same-site path (no open redirect), and the
token cookie is set by the server, HttpOnly and SameSite=Lax (Secure over https), never by JavaScript."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from trustcity import City

LOGIN_HTML = Path(__file__).resolve().parents[2] / "citybrain" / "dashboard" / "static" / "login.html"
OFFSITE = ["https://evil.example/x", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
           "javascript:alert(1)", "http:/evil.example", " //evil.example", "/\t/evil.example", "evil.example",
           ""]


async def _session(c: httpx.AsyncClient, key: str, nxt: str | None) -> httpx.Response:
    body = {"api_key": key} | ({"next": nxt} if nxt is not None else {})
    return await c.post("/api/v1/auth/session", json=body)


@pytest.mark.parametrize("nxt", OFFSITE)
async def test_next_never_leaves_the_site(city: City, nxt: str) -> None:
    r = await _session(city.client, city.keys["auditor"], nxt)
    assert r.status_code == 200, r.text
    assert r.json()["next"] == "/", nxt


async def test_next_keeps_a_same_site_path(city: City) -> None:
    for nxt in ("/case/urn:ngsi-ld:Case:1?tab=log#top", "/community/urn:ngsi-ld:Community:c1", "/"):
        assert (await _session(city.client, city.keys["auditor"], nxt)).json()["next"] == nxt


async def test_the_server_sets_an_httponly_cookie(city: City) -> None:
    c = city.client
    r = await _session(c, city.keys["auditor"], "/")
    cookie = r.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("citybrain_token=") and "httponly" in parts and "samesite=lax" in parts
    assert "path=/" in parts and "secure" not in parts and any(p.startswith("max-age=") for p in parts)
    assert "access_token" not in r.json()  # the page's script never holds the token
    token = cookie.split(";")[0].split("=", 1)[1]
    fresh = httpx.AsyncClient(transport=c._transport, base_url="http://test")
    async with fresh:
        got = await fresh.get("/api/v1/auth/whoami", headers={"Cookie": f"citybrain_token={token}"})
        assert got.status_code == 200 and got.json()["name"] == "auditor", got.text
    bad = await c.post("/api/v1/auth/session", json={"api_key": "cb_wrong.key"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    out = await c.post("/api/v1/auth/logout")
    assert out.status_code == 204 and "max-age=0" in out.headers["set-cookie"].lower()


async def test_the_cookie_is_secure_over_https(city: City) -> None:
    async with httpx.AsyncClient(transport=city.client._transport, base_url="https://test") as c:
        r = await _session(c, city.keys["auditor"], "/")
        assert "secure" in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]


def test_the_login_page_leaves_the_cookie_to_the_server() -> None:
    page = LOGIN_HTML.read_text(encoding="utf-8")
    assert "document.cookie" not in page and "/api/v1/auth/session" in page
