"""Connection limits of `citybrain serve`: header and body deadlines and a header size cap.

uvicorn times out idle kept-alive connections (`timeout_keep_alive`) but nothing else: a client that
connects and sends nothing, or dribbles its headers a byte a second (slow loris), or its body, keeps its
connection (and whatever the app holds for it) for ever. `limited_protocol` returns uvicorn's httptools
protocol with three limits added:

* `header_timeout`: the request line and headers must be in within this many seconds of connecting, or of
  the first byte of the next request on a kept-alive connection; else 408 and the connection is closed;
* `body_timeout`: the whole body must be in within this many seconds of the headers; else the connection
  is closed (the app sees a disconnect);
* `max_header_bytes`: more than this many bytes without the end of the headers is answered 431 and closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _refuse(transport: asyncio.Transport, status: bytes) -> None:
    body = status.split(b" ", 1)[1]
    transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    transport.close()


def limited_protocol(header_timeout: float, body_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """Return an httptools HTTP protocol class for uvicorn (`http=`) enforcing the three limits."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _cb_timer: asyncio.TimerHandle | None = None
        _cb_in_headers = True
        _cb_header_bytes = 0

        def _cb_arm(self, seconds: float, expired: Any) -> None:
            self._cb_cancel()
            if seconds > 0:
                self._cb_timer = self.loop.call_later(seconds, expired)

        def _cb_cancel(self) -> None:
            if self._cb_timer is not None:
                self._cb_timer.cancel()
                self._cb_timer = None

        def _cb_mine(self) -> bool:  # not after a WebSocket upgrade handed the transport to another protocol
            return not self.transport.is_closing() and self.transport.get_protocol() is self

        def _cb_header_expired(self) -> None:
            self._cb_timer = None
            if self._cb_mine():
                _refuse(self.transport, b"408 Request Timeout")

        def _cb_body_expired(self) -> None:
            self._cb_timer = None
            if self._cb_mine():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._cb_in_headers, self._cb_header_bytes = True, 0
            self._cb_arm(header_timeout, self._cb_header_expired)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cb_cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._cb_in_headers and self.parser is not None and self._cb_mine():
                self._cb_header_bytes += len(data)
                if self._cb_header_bytes > max_header_bytes:
                    self._cb_cancel()
                    _refuse(self.transport, b"431 Request Header Fields Too Large")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._cb_in_headers = True
            if self._cb_timer is None:  # a kept-alive connection's next request: its headers' deadline
                self._cb_header_bytes = 0
                self._cb_arm(header_timeout, self._cb_header_expired)

        def on_headers_complete(self) -> None:
            self._cb_in_headers = False
            self._cb_arm(body_timeout, self._cb_body_expired)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._cb_cancel()
            super().on_message_complete()

    return LimitedHttpToolsProtocol
