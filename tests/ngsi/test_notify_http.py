"""The notifier's HTTP client (aiohttp in citybrain/ngsi/notify.py) against a scripted server: kept-alive
connections are reused, chunked and HTTP/1.0 answers are read, a kept-alive connection the server closed
is replaced, garbage is an error that the notifier records as a failure. 4 cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from citybrain.config import Settings
from citybrain.ngsi.notify import Notifier

ANSWERS = {
    "/keep": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "/old": b"HTTP/1.0 200 OK\r\n\r\nbody until close",
    "/fail": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!",
    "/garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
}


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.bodies.append(await reader.readexactly(length))
                writer.write(ANSWERS[path])
                await writer.drain()
                if path in ("/old", "/garbage"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, int]]:
    s = Server()
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    yield s, srv.sockets[0].getsockname()[1]
    srv.close()


class FakeRuntime:
    settings = Settings()  # auth off: notifications may reach loopback (citybrain/ngsi/egress.py)

    def on_stop(self, hook: Any) -> None:
        pass


@pytest.fixture
async def notifier() -> AsyncIterator[Notifier]:
    n = Notifier(FakeRuntime())  # type: ignore[arg-type]
    yield n
    await n.close()


async def test_keep_alive_chunked_and_http10(server: tuple[Server, int], notifier: Notifier) -> None:
    s, port = server
    base = f"http://127.0.0.1:{port}"
    for _ in range(3):
        assert await notifier._post(base + "/keep", b'{"a": 1}', {"Content-Type": "application/json"}) == 204
    assert s.connections == 1 and s.bodies == [b'{"a": 1}'] * 3
    assert await notifier._post(base + "/chunked", b"x", {}) == 200
    assert await notifier._post(base + "/fail", b"x", {}) == 500
    assert s.connections == 1  # still the same connection
    assert await notifier._post(base + "/old", b"x", {}) == 200  # HTTP/1.0 without keep-alive: closed after
    assert await notifier._post(base + "/keep", b"x", {}) == 204
    assert s.connections == 2


async def test_a_connection_closed_by_the_server_is_replaced(server: tuple[Server, int], notifier: Notifier) -> None:
    s, port = server
    url = f"http://127.0.0.1:{port}/keep"
    assert await notifier._post(url, b"1", {}) == 204
    for w in s.writers:  # the server drops its idle connection
        w.close()
    await asyncio.sleep(0.05)
    assert await notifier._post(url, b"2", {}) == 204
    assert s.connections == 2 and s.bodies == [b"1", b"2"]


async def test_garbage_is_an_error(server: tuple[Server, int], notifier: Notifier) -> None:
    _, port = server
    with pytest.raises(aiohttp.ClientError):
        await notifier._post(f"http://127.0.0.1:{port}/garbage", b"x", {})


async def test_an_unreachable_endpoint_is_an_error_not_a_hang(notifier: Notifier) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises((aiohttp.ClientError, OSError)):
        await asyncio.wait_for(notifier._post(f"http://127.0.0.1:{port}/gone", b"x", {}), 10)
