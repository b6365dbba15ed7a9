"""A small HTTP server on 127.0.0.1 that keeps every notification POSTed to it (NGSI-LD subscriptions)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class Receiver:
    """Collects JSON bodies POSTed to http://127.0.0.1:<port>/<anything>."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                with receiver.lock:
                    receiver.bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[dict[str, Any]]:
        """Return a copy of the notifications received so far."""
        with self.lock:
            return list(self.bodies)

    def values(self, attr: str) -> list[Any]:
        """Return the value of `attr` in every entity of every notification, in arrival order."""
        out = []
        for body in self.received():
            for entity in body.get("data", []):
                got = entity.get(attr)
                out.append(got.get("value") if isinstance(got, dict) else got)
        return out

    def wait(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until at least `count` notifications arrived (or `timeout` passed); return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count:
            time.sleep(0.05)
        return self.received()
