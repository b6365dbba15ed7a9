"""The sample deployment files in deploy/ parse, name real settings, and do what docs/administrator.md says.

- deploy/citybrain@.service: `systemd-analyze verify` when it is installed (no warning allowed), and always
  the keys that matter, with ExecStart expanded the way systemd does for instances 1 and 2 and run against a
  stand-in `citybrain` that prints what it was given;
- deploy/node.env.example: every CITYBRAIN_ variable is a setting the code reads;
- deploy/nginx.conf and deploy/haproxy.cfg: `nginx -t` / `haproxy -c`, then each one is run on private
  ports in front of small upstream servers (headers, body limit, failover, unbuffered SSE, health checks).
  nginx, haproxy and openssl fail the test under CI=true when missing (scripts/test-deps.sh installs them)
  and skip it otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from services import require_executable

from citybrain.config import ENV_PREFIX, Settings
from citybrain.ops.admission import Limits

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "citybrain@.service"
NODE_ENV = DEPLOY / "node.env.example"
NGINX = DEPLOY / "nginx.conf"
HAPROXY = DEPLOY / "haproxy.cfg"
SETTING_NAMES = {f.name for f in fields(Settings) if f.name not in ("extra", "environ")}
ADMISSION_NAMES = {f.name for f in fields(Limits)}
MIB = 1024 * 1024


# --- systemd unit ----------------------------------------------------------------------------------
def unit_keys(path: Path) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file: section -> key -> every value in order (systemd keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{n}: keep every setting on one line"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{n}: bad section header {line!r}"
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        assert section, f"{path.name}:{n}: a setting before the first section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{n}: not key=value: {line!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    """Parse a systemd time span (90, 90s, 1min 30s, 2m)."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def expand(value: str, instance: str, host: str) -> str:
    """Apply systemd's specifiers and $$ the way it does before running a command line."""
    return value.replace("%i", instance).replace("%H", host).replace("$$", "$")


def test_systemd_analyze_verify_has_no_warning(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the unit is checked by parsing only")
    shutil.copy(UNIT, tmp_path / UNIT.name)
    got = subprocess.run([analyze, "verify", str(tmp_path / "citybrain@1.service")], capture_output=True,
                         text=True, timeout=60, check=False)
    # unknown keys and bad values are warnings ("…, ignoring") with exit status 0: none may appear
    ours = [ln for ln in (got.stdout + got.stderr).splitlines() if "citybrain@" in ln]
    assert not ours, "\n".join(ours)


def test_unit_runs_one_process_per_instance_as_documented(tmp_path: Path) -> None:
    unit = unit_keys(UNIT)
    svc = unit["Service"]
    assert svc["Restart"] == ["always"]
    assert svc["KillSignal"] == ["SIGTERM"]
    user = svc["User"][-1]
    assert user and user not in ("root", "0")
    files = svc["EnvironmentFile"]
    assert "/etc/citybrain/node.env" in files, "node.env must be required (no '-' in front)"
    assert "-/etc/citybrain/process-%i.env" in files, "the per-instance file is optional"
    assert files.index("/etc/citybrain/node.env") < files.index("-/etc/citybrain/process-%i.env"), \
        "the per-instance file must come after node.env so that it overrides it"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]

    # the stop timeout covers citybrain's own graceful shutdown (uvicorn's wait for requests in flight)
    graceful = re.search(r"timeout_graceful_shutdown=(\d+)", (ROOT / "citybrain" / "cli.py").read_text())
    assert graceful, "citybrain/cli.py no longer sets timeout_graceful_shutdown; update the unit and this test"
    assert seconds(svc["TimeoutStopSec"][-1]) >= max(30, int(graceful[1]))

    hardening = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                 "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": ""}
    for key, want in hardening.items():
        assert svc.get(key) == [want], f"{key}={want} expected, found {svc.get(key)}"

    # every CITYBRAIN_ variable the unit sets is a setting
    for env in svc.get("Environment", []):
        for name in re.findall(rf"{ENV_PREFIX}([A-Z0-9_]+)=", env):
            assert name.lower() in SETTING_NAMES, f"{ENV_PREFIX}{name} is not a setting of citybrain/config.py"

    # ExecStart, expanded for two instances, runs `citybrain serve` on 8080 + N with its own process id
    (exec_start,) = svc["ExecStart"]
    assert "/opt/citybrain/bin/citybrain serve" in exec_start
    stand_in = tmp_path / "citybrain"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "id=$CITYBRAIN_PROCESS_ID"\n')
    stand_in.chmod(0o755)
    seen = set()
    for instance in ("1", "2"):
        unit_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for assignment in svc.get("Environment", []):
            key, _, value = expand(assignment, instance, "host-a").partition("=")
            unit_env[key] = value
        argv = shlex.split(expand(exec_start, instance, "host-a").replace("/opt/citybrain/bin/citybrain",
                                                                         str(stand_in)))
        out = subprocess.run(argv, env=unit_env, capture_output=True, text=True, timeout=10, check=True).stdout.split()
        assert out == ["serve", "--port", str(8080 + int(instance)), f"id=host-a-{instance}"]
        seen.add(out[-1])
    assert len(seen) == 2


def test_serve_takes_the_port_option_the_unit_passes() -> None:
    from typer.testing import CliRunner

    from citybrain.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--port" in result.output


# --- node.env ------------------------------------------------------------------------------------
def env_assignments(path: Path) -> tuple[dict[str, str], list[str]]:
    """Return the active KEY=VALUE lines of an EnvironmentFile and every CITYBRAIN_ name it mentions."""
    active: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(\S*)", line)
        assert m, f"{path.name}:{n}: not NAME=value without spaces or quotes: {line!r}"
        assert m[1] not in active, f"{path.name}:{n}: {m[1]} set twice"
        active[m[1]] = m[2]
    named = re.findall(rf"\b{ENV_PREFIX}([A-Z0-9_]+)=", path.read_text())
    return active, named


def test_every_citybrain_variable_in_node_env_is_a_real_setting() -> None:
    active, named = env_assignments(NODE_ENV)
    assert named, "node.env.example names no CITYBRAIN_ variable"
    for name in named:  # active and commented-out examples alike
        if name.startswith("ADMISSION_"):
            assert name.removeprefix("ADMISSION_").lower() in ADMISSION_NAMES, \
                f"{ENV_PREFIX}{name} is not an admission limit (citybrain/ops/admission.py Limits)"
        else:
            assert name.lower() in SETTING_NAMES, f"{ENV_PREFIX}{name} is not a setting of citybrain/config.py"
    settings = Settings.from_env({k: v for k, v in active.items() if k.startswith(ENV_PREFIX)})
    assert settings.store.startswith("postgresql://") and settings.bus.startswith("nats://")
    assert settings.lease_ttl > 0 and settings.partitions >= 1


def test_node_env_holds_node_wide_values_only() -> None:
    active, _ = env_assignments(NODE_ENV)
    # per-process values come from the unit (port, process id); secrets must be shared, so they are here
    for per_process in ("CITYBRAIN_PORT", "CITYBRAIN_PROCESS_ID"):
        assert per_process not in active
    for shared in ("CITYBRAIN_JWT_SECRET", "CITYBRAIN_LEDGER_KEY", "CITYBRAIN_STORE", "CITYBRAIN_BUS"):
        assert active.get(shared), f"{shared} belongs in the node-wide file"
    assert active["CITYBRAIN_AUTH"] == "on"
    assert "," not in active["CITYBRAIN_BUS"], "the bus takes one NATS URL"
    # uvicorn (citybrain serve) reads FORWARDED_ALLOW_IPS to trust the load balancer's X-Forwarded-For
    import uvicorn.config

    assert "FORWARDED_ALLOW_IPS" in Path(uvicorn.config.__file__).read_text()
    assert active.get("FORWARDED_ALLOW_IPS")


def nginx_body_limit(text: str) -> int:
    (size,) = re.findall(r"^\s*client_max_body_size\s+(\d+)([kmg]?);", text, re.M)
    return int(size[0]) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[size[1]]


def test_body_limits_agree_with_max_body_bytes() -> None:
    active, _ = env_assignments(NODE_ENV)
    want = Settings().max_body_bytes
    assert int(active["CITYBRAIN_MAX_BODY_BYTES"]) == want
    assert nginx_body_limit(NGINX.read_text()) == want
    assert re.search(rf"req\.hdr_val\(content-length\) gt {want}\b", HAPROXY.read_text())


# --- a small upstream for the proxies ---------------------------------------------------------------
class Upstream:
    """A threaded HTTP server standing in for one citybrain process (name, health, echo, SSE)."""

    def __init__(self, name: str, healthy: bool = True) -> None:
        self.name = name
        self.healthy = healthy
        self.health_checks = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/-/health":
                    upstream.health_checks += 1
                    self.answer(200 if upstream.healthy else 503, b'{"status": "ok"}')
                elif self.path.endswith("/stream"):
                    # like citybrain's SSE: an event, a pause, another event (no X-Accel-Buffering header
                    # here: the proxy's own settings must keep it unbuffered)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self.wfile.write(b"data: first\n\n")
                    self.wfile.flush()
                    time.sleep(1.5)
                    self.wfile.write(b"data: second\n\n")
                else:
                    self.echo()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.echo(length)

            def echo(self, length: int = 0) -> None:
                seen = {k.lower(): v for k, v in self.headers.items()}
                self.answer(200, json.dumps({"server": upstream.name, "headers": seen, "length": length}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def upstreams() -> Iterator[list[Upstream]]:
    ups = [Upstream("a"), Upstream("b")]
    yield ups
    for u in ups:
        u.close()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require_executable("openssl")
    key, crt = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    return crt, key


def rewrite(text: str, replacements: list[tuple[str, str, int]]) -> str:
    """Apply regex replacements, each expected `count` times (the sample changed shape if not)."""
    for pattern, repl, count in replacements:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == count, f"{pattern!r} matched {n} times, expected {count}; update the test with the sample"
    return text


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the proxy exited: {log.read_text(errors='replace')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"the proxy did not listen on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def check_proxy(https: str, http: str, upstreams: list[Upstream], *, proto_header: bool = True) -> None:
    """What both proxies must do in front of the processes."""
    with httpx.Client(verify=False, timeout=10) as client:
        assert client.get(f"{http}/api/v1/stats").status_code == 301  # plain HTTP goes to HTTPS

        r = client.get(f"{https}/api/v1/stats", headers={"X-Request-Id": "req-42"})
        assert r.status_code == 200, r.text
        got = r.json()["headers"]
        assert got["x-forwarded-for"] == "127.0.0.1"
        if proto_header:
            assert got["x-forwarded-proto"] == "https"
        assert got["x-request-id"] == "req-42"
        assert client.get(f"{https}/api/v1/stats").json()["headers"].get("x-request-id"), "an id is made"

        # every request answered although one upstream refuses connections; both live ones serve
        servers = [client.get(f"{https}/api/v1/stats").json()["server"] for _ in range(30)]
        assert set(servers) == {u.name for u in upstreams}

        # the body limit is citybrain's 8 MiB
        assert client.post(f"{https}/api/v1/observations", content=b"x" * MIB).status_code == 200
        big = client.post(f"{https}/api/v1/observations", content=b"x" * (8 * MIB + 1))
        assert big.status_code == 413

        # the node's own pages: health is open, the rest only from the internal network (not 127.0.0.1 here)
        assert client.get(f"{https}/-/health").status_code == 200
        assert client.get(f"{https}/-/settings").status_code == 403
        assert client.get(f"{https}/metrics").status_code == 403

        # server-sent events reach the client as they are sent, not when the stream ends
        for path in ("/api/v1/alerts/stream", "/api/v1/stream"):
            t0 = time.monotonic()
            with client.stream("GET", f"{https}{path}") as resp:
                assert resp.status_code == 200
                chunks = resp.iter_raw()
                first = next(chunks)
                took = time.monotonic() - t0
                assert b"data: first" in first
                assert took < 1.0, f"{path}: the first event took {took:.2f} s (buffered by the proxy?)"
                rest = b"".join(chunks)
            assert b"data: second" in first + rest


# --- nginx ---------------------------------------------------------------------------------------------
def nginx_config(tmp_path: Path, site: str) -> Path:
    (tmp_path / "site.conf").write_text(site)
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nworker_processes 1;\n"
                    f"events {{ worker_connections 256; }}\n"
                    f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    return main


def test_nginx_config_is_valid(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    nginx = require_executable("nginx", "/usr/sbin/nginx")
    crt, key = tls
    site = rewrite(NGINX.read_text(), [(r"/etc/nginx/tls/citybrain\.crt", str(crt), 1),
                                       (r"/etc/nginx/tls/citybrain\.key", str(key), 1)])
    main = nginx_config(tmp_path, site)
    got = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert got.returncode == 0, got.stderr


def test_nginx_in_front_of_processes(tmp_path: Path, tls: tuple[Path, Path], upstreams: list[Upstream]) -> None:
    nginx = require_executable("nginx", "/usr/sbin/nginx")
    crt, key = tls
    http_port, https_port, dead = free_port(), free_port(), free_port()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n"
                      for p in (upstreams[0].port, dead, upstreams[1].port))
    site = rewrite(NGINX.read_text(), [
        (r"^    server 10\.0\.1\.\d+:\d+ max_fails=3 fail_timeout=10s;\n", "", 4),
        (r"^(upstream citybrain \{\n)", r"\g<1>" + servers, 1),
        (r"^    listen 80;", f"    listen 127.0.0.1:{http_port};", 1),
        (r"^    listen 443 ssl;", f"    listen 127.0.0.1:{https_port} ssl;", 1),
        (r"/etc/nginx/tls/citybrain\.crt", str(crt), 1),
        (r"/etc/nginx/tls/citybrain\.key", str(key), 1),
        # the redirect names the test port instead of 443
        (r"return 301 https://\$host\$request_uri;", f"return 301 https://$host:{https_port}$request_uri;", 1),
    ])
    main = nginx_config(tmp_path, site)
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(main), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(https_port, proc, tmp_path / "error.log")
        check_proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", upstreams)
    finally:
        stop(proc)


# --- haproxy -------------------------------------------------------------------------------------------
def test_haproxy_config_is_valid(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    haproxy = require_executable("haproxy", "/usr/sbin/haproxy")
    crt, key = tls
    pem = tmp_path / "tls.pem"
    pem.write_text(crt.read_text() + key.read_text())
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(rewrite(HAPROXY.read_text(), [(r"/etc/haproxy/tls/citybrain\.pem", str(pem), 1),
                                                 (r"/run/haproxy/admin\.sock", str(tmp_path / "admin.sock"), 2)]))
    got = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30, check=False)
    assert got.returncode == 0, got.stdout + got.stderr


def test_haproxy_checks_health_and_leaves_degraded_processes_out(
    tmp_path: Path, tls: tuple[Path, Path], upstreams: list[Upstream]
) -> None:
    haproxy = require_executable("haproxy", "/usr/sbin/haproxy")
    crt, key = tls
    pem = tmp_path / "tls.pem"
    pem.write_text(crt.read_text() + key.read_text())
    degraded = Upstream("degraded", healthy=False)  # answers requests, but /-/health says 503
    http_port, https_port, dead = free_port(), free_port(), free_port()
    servers = "".join(f"    server s{i} 127.0.0.1:{p} check\n"
                      for i, p in enumerate((upstreams[0].port, dead, degraded.port, upstreams[1].port)))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(rewrite(HAPROXY.read_text(), [
        (r"^    server \w+ 10\.0\.1\.\d+:\d+ check\n", "", 4),
        (r"^(    # every process of the node: .*\n)", r"\g<1>" + servers, 1),
        (r"^    log /dev/log local0$", "    log stderr format raw local0", 1),
        # 20,000 connections need ~40,000 descriptors, more than a test container may raise its limit to
        (r"^    maxconn 20000$", "    maxconn 1000", 1),
        (r"/run/haproxy/admin\.sock", str(tmp_path / "admin.sock"), 2),
        (r"^    bind :80$", f"    bind 127.0.0.1:{http_port}", 1),
        (r"^    bind :443 ssl crt /etc/haproxy/tls/citybrain\.pem$", f"    bind 127.0.0.1:{https_port} ssl crt {pem}", 1),
        # checks every 100 ms instead of 2 s, so the test does not wait 6 s for `fall 3`
        (r"default-server inter 2s ", "default-server inter 100ms ", 1),
    ]))
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(https_port, proc, log)
        deadline = time.monotonic() + 10
        while degraded.health_checks < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert degraded.health_checks >= 3, "haproxy did not check /-/health"
        time.sleep(0.3)  # one more check round: the degraded and the dead servers are out now
        check_proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", upstreams)
        assert all(u.health_checks > 0 for u in upstreams)

        # rolling upgrade: a process set to drain over the runtime API gets no new requests
        with socket.socket(socket.AF_UNIX) as admin:
            admin.connect(str(tmp_path / "admin.sock"))
            admin.sendall(b"set server citybrain/s0 state drain\n")
            assert admin.recv(4096).strip() == b"", "haproxy refused the drain command"
        with httpx.Client(verify=False, timeout=10) as client:
            served = {client.get(f"https://127.0.0.1:{https_port}/api/v1/stats").json()["server"] for _ in range(20)}
        assert served == {upstreams[1].name}
    finally:
        stop(proc)
        degraded.close()
