"""One citybrain node as real `citybrain serve` processes: several on one PostgreSQL schema and one JetStream,
or one on a SQLite file with the in-process bus (`Node(..., bus="memory")`, the one-process deployment).

`Node(...)` holds the node's shared configuration (store URL, bus stream and subject prefix, node id, lease
TTL, auth) and a temporary working directory that every process runs in (so that secrets kept next to a
PostgreSQL store, var/<node_id>.*, are shared as on one host). `start(n)` starts processes p1 … pn,
`stop(i)` ends one gracefully (SIGTERM), `kill(i)` with SIGKILL, `restart(i)` starts it again with the same
process id and port. `node.rr` sends each request to the next live process (round robin); `node.at(i)` talks
to one. `wait_all(check)` polls until a condition holds on every live process.

With one process, `at(i)`, `stop(i)`, `kill(i)`, `restart(i)` and `cluster(i)` take i modulo the number of
processes, so a scenario written for three processes talks to the one process whatever index it uses; `rr`
sends everything to it too. `restart(i)` starts it again on the same SQLite file.

`Node(..., mqtt=True)` connects the processes to the MQTT broker (CITYBRAIN_TEST_MQTT, default
127.0.0.1:1883) with a topic root of their own (`node.mqtt_prefix`, devices publish on
`node.mqtt_topic(apikey, device)`); the node's named sessions are deleted from the broker at `close()`.
Without it the processes run without MQTT (CITYBRAIN_MQTT empty), as before.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

NATS_URL = os.environ.get("CITYBRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222")
THREE_PG_NATS, ONE_SQLITE = "3-pg-nats", "1-sqlite"  # the deployments every scenario may run on
MQTT_HOST, _, _MQTT_PORT = os.environ.get("CITYBRAIN_TEST_MQTT", "127.0.0.1:1883").partition(":")
MQTT_PORT = int(_MQTT_PORT or 1883)
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_token(prefix: str = "t") -> str:
    """Return a short unique token (a stream name, subject prefix or id part of one test module)."""
    return prefix + uuid.uuid4().hex[:10]


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check()` until it returns something truthy and return it; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            got = check()
            last, error = got, None
            if got:
                return got
        except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r}"
                                 + (f", error: {error!r}" if error else "") + ")")
        time.sleep(interval)


class Proc:
    """One `citybrain serve` process of the node."""

    def __init__(self, node: Node, index: int) -> None:
        self.node = node
        self.index = index
        self.process_id = f"p{index + 1}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = node.workdir / f"{self.process_id}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base, timeout=node.timeout, headers=node.headers)
        self.starts = 0

    def __repr__(self) -> str:
        return f"Proc({self.process_id}, port={self.port}, alive={self.alive})"

    @property
    def alive(self) -> bool:
        """True while the OS process runs."""
        return self.popen is not None and self.popen.poll() is None

    def env(self) -> dict[str, str]:
        """Return the process's environment: the node's shared settings plus its own port and id."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        env.update(self.node.settings_env())
        env.update({"CITYBRAIN_PORT": str(self.port), "CITYBRAIN_PROCESS_ID": self.process_id,
                    "PYTHONUNBUFFERED": "1"})
        return env

    def launch(self) -> None:
        """Start the OS process (stdout and stderr appended to its log file)."""
        assert not self.alive, f"{self.process_id} is already running"
        self.starts += 1
        with self.log.open("ab") as f:
            f.write(f"\n===== start #{self.starts} of {self.process_id} at {time.strftime('%H:%M:%S')} =====\n"
                    .encode())
        out = self.log.open("ab")
        try:
            self.popen = subprocess.Popen([sys.executable, "-m", "citybrain", "serve", "--log-format", "text"],
                                          env=self.env(), cwd=self.node.workdir, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        finally:
            out.close()

    def wait_ready(self, timeout: float) -> None:
        """Wait until GET /-/health answers 200; fail with the log's tail if the process exits or never does."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"{self.process_id} exited with {self.popen and self.popen.returncode} "
                                     f"while starting:\n{self.tail()}")
            try:
                r = self.http.get("/-/health", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"{self.process_id} not healthy after {timeout:g} s ({last}):\n{self.tail()}")

    def signal(self, sig: int) -> None:
        """Send a signal to the process."""
        assert self.popen is not None
        self.popen.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to end; return its exit code (None if it is still running)."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, lines: int = 60) -> str:
        """Return the last lines of the process's log."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the process if it still runs (SIGTERM, then SIGKILL) and close its HTTP client."""
        if self.alive:
            self.signal(signal.SIGTERM)
            if self.wait_exit(15) is None:
                self.signal(signal.SIGKILL)
                self.wait_exit(5)
        self.http.close()


class RoundRobin:
    """An HTTP client that sends each request to the next live process of the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def next_proc(self) -> Proc:
        """Return the process that takes the next request."""
        live = self.node.live()
        assert live, "no process of the node is running"
        with self._lock:
            n = next(self._turn)
        return live[n % len(live)]

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send one request to the next live process."""
        return self.next_proc().http.request(method, path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        """GET on the next process."""
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        """POST on the next process."""
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        """PUT on the next process."""
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        """PATCH on the next process."""
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        """DELETE on the next process."""
        return self.request("DELETE", path, **kw)


class Node:
    """Processes of one citybrain node sharing a store, a bus stream, a node id and a working directory."""

    def __init__(self, workdir: Path, store: str, *, node_id: str | None = None, auth: str = "off",
                 lease_ttl: float = 3.0, partitions: int = 8, env: dict[str, str] | None = None,
                 timeout: float = 20.0, mqtt: bool = False, bus: str = NATS_URL) -> None:
        self.workdir = workdir
        self.store = store
        self.bus = bus  # NATS_URL, or "memory" (one process only: the in-process bus is not shared)
        self.node_id = node_id or fresh_token("n")
        self.stream = fresh_token("SCALEOUT_").upper()
        self.prefix = fresh_token("t")
        self.auth = auth
        self.lease_ttl = lease_ttl
        self.partitions = partitions
        self.jwt_secret = uuid.uuid4().hex + uuid.uuid4().hex if auth == "on" else ""
        self.extra_env = dict(env or {})
        self.timeout = timeout
        self.headers: dict[str, str] = {}
        self.procs: list[Proc] = []
        self.rr = RoundRobin(self)
        # a topic root per node, so that parallel runs on one broker never see each other's devices; sessions
        # that outlive a crashed test run expire after 10 minutes
        self.mqtt_prefix = f"cbtest/{self.prefix}" if mqtt else ""
        self.mqtt_url = f"mqtt://{MQTT_HOST}:{MQTT_PORT}?prefix={self.mqtt_prefix}&expiry=600" if mqtt else ""

    def mqtt_topic(self, apikey: str, device_id: str) -> str:
        """Return the IoT Agent JSON measurement topic of a device under the node's topic root."""
        assert self.mqtt_prefix, "Node(..., mqtt=True) is needed for MQTT"
        return f"{self.mqtt_prefix}/{apikey}/{device_id}/attrs"

    # configuration ------------------------------------------------------------------------------
    def settings_env(self) -> dict[str, str]:
        """Return the CITYBRAIN_* variables every process of the node shares."""
        env = {"CITYBRAIN_STORE": self.store, "CITYBRAIN_BUS": self.bus, "CITYBRAIN_BUS_STREAM": self.stream,
               "CITYBRAIN_BUS_PREFIX": self.prefix, "CITYBRAIN_NODE_ID": self.node_id,
               "CITYBRAIN_HOST": "127.0.0.1", "CITYBRAIN_LEASE_TTL": str(self.lease_ttl),
               "CITYBRAIN_PARTITIONS": str(self.partitions), "CITYBRAIN_AUTH": self.auth,
               "CITYBRAIN_MQTT": self.mqtt_url}
        if self.jwt_secret:
            env["CITYBRAIN_JWT_SECRET"] = self.jwt_secret
        env.update(self.extra_env)
        return env

    def authorize(self, credential: str) -> None:
        """Send `Authorization: Bearer <credential>` on every request of every process from now on."""
        self.headers["Authorization"] = f"Bearer {credential}"
        for p in self.procs:
            p.http.headers["Authorization"] = self.headers["Authorization"]

    @property
    def on_nats(self) -> bool:
        """True when the node's bus is NATS JetStream (False: the in-process bus of one process)."""
        return self.bus != "memory"

    @property
    def on_postgres(self) -> bool:
        """True when the node's store is PostgreSQL (False: a SQLite file)."""
        return self.store.startswith(("postgresql://", "postgres://"))

    def node_file(self, suffix: str) -> Path:
        """Return the path of a node file a process keeps beside its store (as citybrain.nodekeys.node_file):
        var/<node_id><suffix> in the working directory for PostgreSQL, <store file><suffix> for SQLite."""
        if self.on_postgres:
            return self.workdir / "var" / f"{self.node_id}{suffix}"
        return Path(self.store + suffix)

    # processes ------------------------------------------------------------------------------------
    def proc(self, i: int) -> Proc:
        """Return process i (i modulo the number of processes, so that index 2 is the one process of a node
        of one)."""
        return self.procs[i % len(self.procs)]

    def start(self, n: int = 3, timeout: float = 90.0) -> None:
        """Start processes p1 … pn at once and wait until each answers /-/health."""
        assert n == 1 or self.on_nats, "several processes need a shared bus (NATS), not the in-process one"
        while len(self.procs) < n:
            self.procs.append(Proc(self, len(self.procs)))
        for p in self.procs[:n]:
            if not p.alive:
                p.launch()
        for p in self.procs[:n]:
            p.wait_ready(timeout)

    def stop(self, i: int, timeout: float = 30.0) -> int | None:
        """Stop process i gracefully (SIGTERM) and return its exit code."""
        p = self.proc(i)
        p.signal(signal.SIGTERM)
        code = p.wait_exit(timeout)
        assert code is not None, f"{p.process_id} did not stop within {timeout:g} s of SIGTERM:\n{p.tail()}"
        return code

    def kill(self, i: int) -> None:
        """Kill process i with SIGKILL (no shutdown code runs)."""
        p = self.proc(i)
        p.signal(signal.SIGKILL)
        p.wait_exit(10)

    def restart(self, i: int, timeout: float = 90.0) -> None:
        """Start process i again (same process id and port) and wait until it is healthy."""
        p = self.proc(i)
        if p.alive:
            self.stop(p.index)
        p.launch()
        p.wait_ready(timeout)

    def live(self) -> list[Proc]:
        """Return the processes that are running."""
        return [p for p in self.procs if p.alive]

    def at(self, i: int) -> httpx.Client:
        """Return the HTTP client of process i."""
        return self.proc(i).http

    def which(self, response: httpx.Response) -> int:
        """Return the index of the process that answered `response`."""
        port = response.request.url.port
        return next(p.index for p in self.procs if p.port == port)

    def clients(self) -> Iterator[tuple[Proc, httpx.Client]]:
        """Yield (process, client) for every live process."""
        for p in self.live():
            yield p, p.http

    # waiting --------------------------------------------------------------------------------------
    def wait_all(self, check: Callable[[httpx.Client], T], timeout: float = 10.0, what: str = "a condition",
                 interval: float = 0.1) -> list[T]:
        """Poll `check(client)` on every live process until it is truthy on all; return the values, by process.

        `check` may raise AssertionError (or an HTTP error) to say what is still missing: the last message of each
        process is in the timeout's error."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while True:
            values: list[T] = []
            ok = True
            for p in self.live():
                try:
                    got = check(p.http)
                except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
                    last[p.process_id] = repr(exc)
                    ok = False
                    break
                last[p.process_id] = got
                if not got:
                    ok = False
                    break
                values.append(got)
            if ok:
                return values
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what} on every process "
                                     f"(last seen: {last!r})")
            time.sleep(interval)

    def cluster(self, i: int) -> dict[str, Any] | None:
        """Return GET /-/cluster of process i (None when the process does not offer it)."""
        r = self.at(i).get("/-/cluster")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    # teardown -------------------------------------------------------------------------------------
    def logs(self, lines: int = 80) -> str:
        """Return the tails of every process's log, for a failing test's report."""
        return "\n\n".join(f"--- {p.process_id} (port {p.port}, {'running' if p.alive else 'stopped'}) "
                           f"{p.log} ---\n{p.tail(lines)}" for p in self.procs)

    def close(self) -> None:
        """Stop every process, then delete the node's stream and lease bucket (and its MQTT sessions)."""
        for p in self.procs:
            p.close()
        if self.on_nats:
            asyncio.run(delete_bus(self.stream))
        if self.mqtt_url:
            asyncio.run(delete_mqtt_sessions(self.mqtt_session_ids()))

    def mqtt_session_ids(self) -> list[str]:
        """Return the client ids of the node's named MQTT sessions (as its processes compute them)."""
        from citybrain.config import Settings
        from citybrain.mqtt.client import node_sessions

        settings = Settings(node_id=self.node_id, bus=NATS_URL, bus_stream=self.stream, bus_prefix=self.prefix,
                            mqtt=self.mqtt_url)
        return [o.client_id for o in node_sessions(self.mqtt_url, settings).values()]


async def delete_mqtt_sessions(client_ids: list[str]) -> None:
    """End named MQTT sessions at the broker (connect each with clean start and no expiry, then leave)."""
    from citybrain.mqtt.wire import Connection, ConnectOptions, MqttError

    for cid in client_ids:
        try:
            conn = await Connection.open(ConnectOptions(host=MQTT_HOST, port=MQTT_PORT, client_id=cid))
        except (MqttError, OSError):
            continue
        await conn.disconnect()


async def delete_bus(stream: str) -> None:
    """Delete a JetStream stream and its lease bucket <stream>_LEASES (best effort: either may not exist)."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    try:
        js = nc.jetstream()
        try:
            await js.delete_stream(stream)
        except NotFoundError:
            pass
        try:
            await js.delete_key_value(f"{stream}_LEASES")
        except NotFoundError:
            pass
    finally:
        await nc.close()
