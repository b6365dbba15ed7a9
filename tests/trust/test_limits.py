"""Resource limits on the unauthenticated (and barely authenticated) surface, in process (issue #20).

One test per finding: password hashing on the event loop and unthrottled wrong logins, a chunked body past
`max_body_bytes`, a backtracking `idPattern` / `q ~=` regex, the size of a batch's error document, and a
malformed login form. The slow-loris and login-flood tests run a real `citybrain serve` (test_limits_serve.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from trustcity import City

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.runtime import CityBrain

TOKEN = "/api/v1/auth/token"


async def _loop_stall_during(work: Any) -> float:
    """Run `work` (a coroutine) while a ticker measures the longest time the event loop did not run it."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        done.set()
        await ticker
    return max(gaps)


async def test_password_checks_do_not_block_the_event_loop(city: City) -> None:
    """Eight concurrent wrong-password logins (scrypt, ~50 ms each) must not stall the loop."""
    city.rt.settings.login_burst = 1000  # this test is about the loop, not the throttle

    async def flood() -> None:
        rs = await asyncio.gather(*[city.client.post(TOKEN, json={"username": "data-officer", "password": f"x{i}"})
                                    for i in range(8)])
        assert [r.status_code for r in rs] == [401] * 8

    stall = await _loop_stall_during(flood())
    assert stall < 0.1, f"the event loop stalled {stall * 1000:.0f} ms during 8 password checks"


async def test_wrong_logins_are_throttled_per_account_and_address(city: City) -> None:
    c = city.client
    codes = [(await c.post(TOKEN, json={"username": "data-officer", "password": "wrong"})).status_code
             for _ in range(15)]
    assert codes[0] == 401 and codes[-1] == 429, codes
    r = await c.post(TOKEN, json={"username": "data-officer", "password": "pw-data-officer"})
    assert r.status_code == 429, "a throttled account is refused before its password is checked"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
    # the same address is throttled for other accounts too (it guessed too often)
    r = await c.post(TOKEN, json={"username": "boss", "password": "wrong"})
    assert r.status_code == 429
    # the address may not use the token endpoint for now, but API keys still authenticate every other request
    r = await c.post(TOKEN, json={"api_key": city.keys["data_officer"]})
    assert r.status_code == 429
    r = await c.get("/api/v1/auth/whoami", headers=city.auth("data_officer"))
    assert r.status_code == 200


async def test_login_throttle_lets_the_owner_in_after_the_backoff(city: City) -> None:
    throttle = city.rt.ports.auth.throttle
    for _ in range(30):
        await city.client.post(TOKEN, json={"username": "data-officer", "password": "wrong"})
    assert (await city.client.post(TOKEN, json={"username": "data-officer",
                                                "password": "pw-data-officer"})).status_code == 429
    throttle.clock = lambda: time.monotonic() + 3600  # an hour later
    r = await city.client.post(TOKEN, json={"username": "data-officer", "password": "pw-data-officer"})
    assert r.status_code == 200, r.text


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[tuple[CityBrain, Any]]:
    """A node with auth off and a 64 KiB body limit; yields the runtime and its ASGI app."""
    rt = CityBrain(Settings(store=str(tmp_path / "small.db"), max_body_bytes=64 * 1024))
    await rt.start()
    try:
        yield rt, create_app(rt, manage_runtime=False)
    finally:
        await rt.stop()


async def _call(app: Any, method: str, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
                ) -> tuple[int, bytes, int]:
    """Call the ASGI app with a streamed body; return (status, body, how many body bytes the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []
    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not queue:
            await asyncio.sleep(3600)
        chunk = queue.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 5000), "server": ("test", 80)}
    await asyncio.wait_for(app(scope, receive, send), 30)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


@pytest.mark.parametrize("path", ["/api/v1/observations", "/ngsi-ld/v1/entityOperations/upsert"])
async def test_a_chunked_body_is_cut_at_the_limit(small: tuple[CityBrain, Any], path: str) -> None:
    """No Content-Length (chunked transfer encoding): the limit counts what arrives and stops reading there."""
    _, app = small
    chunk = b" " * 16 * 1024
    status, body, pulled = await _call(app, "POST", path, [b"["] + [chunk] * 64,
                                       [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")])
    assert status == 413, body
    assert pulled <= 64 * 1024 + len(chunk) + 1, f"read {pulled} bytes past a 64 KiB limit"


async def test_a_body_under_the_limit_still_arrives_in_chunks(small: tuple[CityBrain, Any]) -> None:
    _, app = small
    status, body, _ = await _call(app, "POST", "/api/v1/observations", [b"[", b"]"],
                                  [(b"content-type", b"application/json")])
    assert status == 200, body


LONG = "a" * 24  # (a+)+b against a run of 24 a's: ~1 s of backtracking per id in Python's re
NAME = "a" * 25  # and ~2 s per name


async def _backtracking_city(city: City) -> None:
    for i in range(3):
        await city.rt.execute("entity.write", {"entity": {
            "id": f"urn:ngsi-ld:T:{LONG}", "type": "T", "attrs": {"name": {"type": "Property", "value": NAME}}}}
                              if i == 0 else {"entity": {"id": f"urn:ngsi-ld:T{i}:{LONG}", "type": "T",
                                                         "attrs": {"name": {"type": "Property", "value": NAME}}}})


@pytest.mark.parametrize("params", [
    {"type": "T", "idPattern": "^urn:ngsi-ld:T[0-9]?:(a+)+b$"},
    {"type": "T", "q": "name~=\"^(a+)+b$\""},
])
async def test_a_backtracking_regex_answers_fast(city: City, params: dict[str, str]) -> None:
    """A read-only user's pathological pattern answers at once (no match here) and never stalls the loop."""
    await _backtracking_city(city)
    warm = await city.client.get("/ngsi-ld/v1/entities", params={"type": "T", "idPattern": "^urn:"},
                                 headers=city.auth("auditor"))
    assert warm.status_code == 200 and len(warm.json()) == 3
    t0 = time.perf_counter()
    r = await city.client.get("/ngsi-ld/v1/entities", params=params, headers=city.auth("auditor"))
    elapsed = time.perf_counter() - t0
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json() == []
    assert elapsed < 1.0, f"the pattern took {elapsed:.1f} s"  # Python's re: 1.7 to 3.8 s here


async def test_regex_filters_still_match(city: City) -> None:
    await _backtracking_city(city)
    h = city.auth("auditor")
    r = await city.client.get("/ngsi-ld/v1/entities", params={"type": "T", "idPattern": r"^urn:ngsi-ld:T\d:a+$"},
                              headers=h)
    assert r.status_code == 200 and sorted(e["id"] for e in r.json()) == [
        f"urn:ngsi-ld:T1:{LONG}", f"urn:ngsi-ld:T2:{LONG}"]
    r = await city.client.get("/ngsi-ld/v1/entities", params={"type": "T", "q": "name~=^a{25}$"}, headers=h)
    assert r.status_code == 200 and len(r.json()) == 3
    r = await city.client.get("/ngsi-ld/v1/entities", params={"type": "T", "idPattern": r"(a)\1"}, headers=h)
    assert r.status_code == 400, "back-references are refused (RE2 syntax), not run"


async def test_a_batch_of_bad_items_gives_a_bounded_error_document(city: City) -> None:
    h = city.auth("admin") | {"content-type": "application/json"}
    body = orjson.dumps(list(range(100_000, 120_000)))  # 140 kB of integers
    r = await city.client.post("/ngsi-ld/v1/entityOperations/create", content=body, headers=h)
    assert r.status_code in (207, 400, 413), r.text[:300]
    assert len(r.content) < 64 * 1024, f"{len(body)} bytes of input gave a {len(r.content)}-byte error body"
    if r.status_code == 207:
        doc = r.json()
        assert len(doc["errors"]) <= 100 and doc["errorsOmitted"] == 20_000 - len(doc["errors"])
    r = await city.client.post("/api/v1/observations", content=body, headers=h)
    assert r.status_code == 400, r.text[:300]
    assert len(r.content) < 64 * 1024, f"{len(body)} bytes of input gave a {len(r.content)}-byte error body"
    doc = r.json()
    assert len(doc["rejected"]) <= 100 and doc["rejected_count"] == 20_000


async def test_a_batch_over_the_item_cap_is_refused(city: City) -> None:
    h = city.auth("admin") | {"content-type": "application/json"}
    r = await city.client.post("/ngsi-ld/v1/entityOperations/create", content=b"[" + b"1," * 60_000 + b"1]",
                               headers=h)
    assert r.status_code == 400 and len(r.content) < 4096, r.text[:300]


@pytest.mark.parametrize(("body", "status"), [
    (b"\xff\xfe\x00garbage=%ff%fe&&&", 400),   # not UTF-8
    (b"username=%ff%fe&password=x", 400),       # percent-escapes that decode to invalid UTF-8
    (b"username=a&password=" + b"%" * 10, 401),  # dangling escapes are kept as text: a wrong password
    (b"=&=&==", 401),                            # parses, names no credentials
])
async def test_a_malformed_login_form_is_a_400(city: City, body: bytes, status: int) -> None:
    r = await city.client.post(TOKEN, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_good_login_form_still_works(city: City) -> None:
    r = await city.client.post(TOKEN, data={"username": "data-officer", "password": "pw-data-officer"})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"


def test_settings_documented() -> None:
    from citybrain.config import SETTING_HELP

    for name in ("login_burst", "login_refill_s", "header_timeout", "body_timeout", "max_header_bytes",
                 "max_batch_items", "max_errors"):
        assert name in SETTING_HELP
        assert name in Path(__file__).parents[2].joinpath("docs/security.md").read_text()

