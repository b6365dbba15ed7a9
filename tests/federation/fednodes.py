"""Run citybrain nodes as separate processes (`python -m citybrain serve …`) for federation tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

NATS_URL = "nats://127.0.0.1:4222"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_prefix() -> str:
    """Return a subject prefix (and so a stream) of its own for one test run."""
    return "t" + uuid.uuid4().hex[:10]


def purge(pfx: str) -> None:
    """Delete the test run's stream (best effort)."""
    import asyncio

    import nats

    from citybrain.federation.messages import stream_name

    async def run() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2)
        try:
            await nc.jetstream().delete_stream(stream_name(pfx))
        except Exception:
            pass
        await nc.close()

    asyncio.run(run())


class Node:
    """One citybrain process with its own SQLite file."""

    def __init__(self, tmp: Path, node_id: str, role: str, pfx: str, area: str = "") -> None:
        self.node_id, self.role, self.area, self.prefix = node_id, role, area, pfx
        self.store = tmp / f"{node_id}.db"
        self.log = tmp / f"{node_id}.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self) -> None:
        """Start the process (again, after a kill: same store, same port)."""
        env = dict(os.environ, CITYBRAIN_AUTH="off", CITYBRAIN_FEDERATION_PREFIX=self.prefix,
                   PYTHONPATH=str(REPO))
        cmd = [sys.executable, "-m", "citybrain", "serve", "--port", str(self.port), "--store", str(self.store),
               "--bus", "memory", "--node-id", self.node_id, "--role", self.role, "--parent", NATS_URL]
        if self.area:
            cmd += ["--area", self.area]
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the HTTP API answers and the federation link is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                r = self.http.get("/api/v1/federation")
                if r.status_code == 200 and r.json()["link"]["state"] == "up":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.node_id} not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the process (no shutdown hooks run)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON resource (raise on error)."""
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON (raise on error) and return the JSON answer."""
        r = self.http.post(path, json=body)
        assert r.status_code < 300, f"{self.node_id} {path}: {r.status_code} {r.text}"
        return r.json()


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
