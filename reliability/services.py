"""The node under test and private dependency servers (NATS, PostgreSQL, Mosquitto) on their own ports.

Fault scenarios stop and restart these private servers, never the shared ones other tests use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Wait until 127.0.0.1:port accepts connections."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Node:
    """A citybrain node (reliability/node.py) as a child process."""

    def __init__(self, store: str, bus: str = "memory", mqtt: str = "", sensors: int = 8, devices: int = 0,
                 fault: str | None = None, workdir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.store, self.bus, self.mqtt = store, bus, mqtt
        self.sensors, self.devices, self.fault = sensors, devices, fault
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="cb-rel-"))
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> float:
        """Start the node; return seconds until /-/health answered 200."""
        cmd = [sys.executable, str(ROOT / "reliability" / "node.py"), "--store", self.store, "--bus", self.bus,
               "--port", str(self.port), "--sensors", str(self.sensors), "--devices", str(self.devices)]
        if self.mqtt:
            cmd += ["--mqtt", self.mqtt]
        if self.fault:
            cmd += ["--fault", self.fault]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")} | self.env
        self.starts += 1
        log = open(self.workdir / f"node-{self.starts}.log", "wb")  # noqa: SIM115
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            if self.healthy():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise TimeoutError(f"node not healthy after {timeout}s: {self.log_text()[-2000:]}")

    def healthy(self) -> bool:
        """Return True when /-/health answers 200."""
        try:
            return httpx.get(self.base + "/-/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> tuple[int, dict[str, object]]:
        """Return /-/health's status code and body (0, {} when it does not answer)."""
        try:
            r = httpx.get(self.base + "/-/health", timeout=3.0)
            return r.status_code, r.json()
        except (httpx.HTTPError, ValueError):
            return 0, {}

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (no chance to flush anything)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the node (graceful drain) and return its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return -9
        return int(self.proc.returncode)

    def cleanup(self) -> None:
        """Remove the node's work directory (its store and logs); kept when a scenario failed."""
        if not self.store.startswith("postgresql://"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        """Return the output of the latest start."""
        path = self.workdir / f"node-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Server:
    """A private server process restarted by fault scenarios."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"cb-rel-{name}-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line that runs the server in the foreground."""
        raise NotImplementedError

    def start(self) -> None:
        """Start (or restart) the server and wait for its port."""
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_port(self.port)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        """Stop and remove the data directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateNats(Server):
    """nats-server -js on its own port and store directory."""

    def __init__(self) -> None:
        super().__init__("nats")
        self.url = f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """Return the nats-server command line."""
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        return [exe, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.dir / "js")]


class PrivateMosquitto(Server):
    """Mosquitto with persistence and no queue limit (QoS 1 messages for an absent session are kept)."""

    def __init__(self) -> None:
        super().__init__("mosquitto")
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nmax_queued_messages 0\nmax_inflight_messages 0\n")

    def command(self) -> list[str]:
        """Return the mosquitto command line."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [exe, "-c", str(self.dir / "mosquitto.conf")]


class PrivatePostgres(Server):
    """A throw-away PostgreSQL cluster (initdb) run as the postgres user on its own port."""

    def __init__(self) -> None:
        super().__init__("pg")
        versions = sorted(PG_BIN.glob("*/bin/initdb")) if PG_BIN.exists() else []
        if not versions:
            raise FileNotFoundError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.user: dict[str, str] = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        if self.user:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, cwd=self.dir, **self.user)  # type: ignore[call-overload]

    def command(self) -> list[str]:
        """Return the postgres command line."""
        return [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
                "-c", "listen_addresses=127.0.0.1"]

    def start(self) -> None:
        """Start (or restart) the postmaster as the postgres user."""
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     **self.user)  # type: ignore[call-overload]
        wait_port(self.port)
        time.sleep(0.3)  # the port opens a moment before connections are accepted

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
