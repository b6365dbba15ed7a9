"""Limits on the unauthenticated surface against a real `citybrain serve` (auth on, loopback only).

- a flood of wrong-password logins (8 concurrent clients for ~5 s) leaves `/-/health` p99 under 50 ms;
- a client that dribbles its headers (slow loris), or its body, or sends nothing, is cut within seconds;
- endless headers are refused (431) instead of being buffered.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citybrain.config import Settings
from citybrain.runtime import CityBrain

ROOT = Path(__file__).resolve().parents[2]
BODY_TIMEOUT = 3  # the fixture's setting; header_timeout keeps its default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _provision(store: str) -> str:
    async with CityBrain(Settings(store=store, auth="on"),
                         components=["citybrain.model.commands", "citybrain.trust"]) as rt:
        ctx = rt.context("admin:test")
        await rt.execute("user.add", {"name": "zhao", "role": "auditor", "password": "right-password"}, ctx)
        await rt.execute("user.add", {"name": "boss", "role": "admin"}, ctx)
        key: str = (await rt.execute("user.key", {"name": "boss"}, ctx))["key"]
        return key


KEYS: dict[str, str] = {}


@pytest.fixture
def admin_key(server: int) -> str:
    return KEYS["admin"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real node with auth on, one password user (zhao) and a short body deadline."""
    tmp = tmp_path_factory.mktemp("limits")
    store = str(tmp / "cb.db")
    KEYS["admin"] = asyncio.run(_provision(store))
    port = free_port()
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env |= {"PYTHONUNBUFFERED": "1", "CITYBRAIN_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain", "serve", "--store", store, "--bus", "memory", "--auth", "on",
         "--host", "127.0.0.1", "--port", str(port), "--log-format", "text"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"citybrain serve exited with {proc.returncode}: {(tmp / 'serve.log').read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"citybrain serve did not become healthy: {(tmp / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


FLOOD = textwrap.dedent("""
    import asyncio, collections, json, sys, time
    import httpx

    async def client(url, until, codes):
        async with httpx.AsyncClient(timeout=10) as c:
            i = 0
            while time.monotonic() < until:
                i += 1
                r = await c.post(url, json={"username": "zhao", "password": f"guess-{i}"})
                codes[r.status_code] += 1

    async def main(port, seconds):
        codes = collections.Counter()
        until = time.monotonic() + seconds
        url = f"http://127.0.0.1:{port}/api/v1/auth/token"
        await asyncio.gather(*[client(url, until, codes) for _ in range(8)])
        print(json.dumps(codes))

    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
""")


def test_health_stays_fast_under_a_login_flood(server: int) -> None:
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(server), "5"], stdout=subprocess.PIPE, text=True)
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server}", timeout=10) as c:
            time.sleep(0.5)  # let the flood start
            t_end = time.monotonic() + 4
            while time.monotonic() < t_end:
                t0 = time.perf_counter()
                assert c.get("/-/health").status_code == 200
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.01)
    finally:
        out, _ = flood.communicate(timeout=60)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.99) - 1)]
    print(f"health under the login flood: {len(latencies)} probes, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms; flood answers {out.strip()}")
    assert p99 < 0.05, f"/-/health p99 {p99 * 1000:.0f} ms under a login flood (answers {out.strip()})"
    assert '"429"' in out, f"the flood was never throttled: {out}"


def _closed_after(sock: socket.socket, dribble: bytes, limit: float, step: float = 0.5) -> float:
    """Send `dribble` one byte per `step` s until the server closes the connection; return the seconds taken."""
    t0 = time.monotonic()
    sock.settimeout(step)
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            if dribble:
                sock.send(dribble[i % len(dribble):i % len(dribble) + 1])
                i += 1
            got = sock.recv(65536)
            if got == b"" or got.startswith(b"HTTP/1.1 4"):  # closed, or refused with a 4xx and then closed
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            return time.monotonic() - t0
    return time.monotonic() - t0


def test_slow_loris_headers_are_cut(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n")
        took = _closed_after(s, b"X-Slow: yes\r\n", limit=20)
    print(f"slow-loris (headers) cut after {took:.1f} s")
    assert took < 8, f"a client dribbling headers was kept {took:.1f} s"


def test_an_idle_connection_is_cut(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        took = _closed_after(s, b"", limit=20)
    assert took < 8, f"a connection that never sent a request was kept {took:.1f} s"


def test_slow_loris_on_a_kept_alive_connection_is_cut(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /-/health HTTP/1.1\r\n")
        took = _closed_after(s, b"X-Slow: yes\r\n", limit=20)
    assert took < 8, f"a kept-alive client dribbling its next request was kept {took:.1f} s"


def test_a_dribbled_body_is_cut(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        took = _closed_after(s, b" ", limit=20)
    print(f"slow body cut after {took:.1f} s")
    assert took < BODY_TIMEOUT + 3, f"a client dribbling its body was kept {took:.1f} s"


def test_a_chunked_body_past_the_limit_is_refused_and_cut(server: int, admin_key: str) -> None:
    """20 MiB sent chunked (no Content-Length) against the 8 MiB limit: 413, and the server stops reading."""
    chunk = b" " * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST /api/v1/observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-API-Key: " + admin_key.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.settimeout(10)
        try:
            while sent < 20 * 1024 * 1024:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:  # the server closed the connection: what we meant
            pass
        answer = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
        except OSError:
            pass
    print(f"chunked body: {sent} bytes sent before the server stopped reading; answer {answer[:12]!r}")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert sent < 20 * 1024 * 1024, "the server read the whole 20 MiB body"


def test_endless_headers_are_refused(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(5)
        refused = b""
        try:
            for _ in range(2000):  # up to 2 MB of headers
                s.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass
        try:
            refused = s.recv(65536)
        except OSError:
            pass
    print(f"endless headers answered {refused[:40]!r}")
    assert refused.startswith(b"HTTP/1.1 431"), refused[:200]
    # and the node still answers
    assert httpx.get(f"http://127.0.0.1:{server}/-/health", timeout=5).status_code == 200
