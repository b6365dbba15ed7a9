"""ngsildclient (the Orange NGSI-LD Python client, PyPI 0.5.2) against a real running citybrain.

The client pins old httpx/rich, so it lives in its own venv (build/ngsildclient-venv, made by
scripts/ngsildclient-venv.sh; NGSILDCLIENT_VENV overrides the path) and is driven through the small scripts in
tests/ngsi/ngsildclient_scripts/, each printing one JSON line. citybrain runs as `python -m citybrain serve`
on a free port with a temporary SQLite store. Outside CI a missing venv skips; under CI=true it fails.

Cases: entity CRUD, query with count, batch upsert, subscriptions (a notification reaches a local HTTP
server), temporal queries (get, lastN, between, aggregate).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.services import in_ci

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "ngsildclient_scripts"
VENV = Path(os.environ.get("NGSILDCLIENT_VENV", ROOT / "build" / "ngsildclient-venv"))
CLIENT_PY = VENV / "bin" / "python"

pytestmark = pytest.mark.slow


def _require_venv() -> None:
    ok = CLIENT_PY.exists() and subprocess.run(
        [str(CLIENT_PY), "-c", "import ngsildclient"], capture_output=True, timeout=60).returncode == 0
    if ok:
        return
    reason = (f"ngsildclient is not installed in {VENV} (run `bash scripts/ngsildclient-venv.sh`, "
              "or `make test-deps`)")
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real citybrain (`python -m citybrain serve`) on a free port and a temporary SQLite store."""
    _require_venv()
    tmp = tmp_path_factory.mktemp("ngsildclient")
    port = free_port()
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in [k for k in env if k.startswith("CITYBRAIN_")]:
        del env[key]
    env["CITYBRAIN_AUTH"] = "off"  # `citybrain serve` authenticates by default; these clients send no key
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain", "serve", "--store", str(tmp / "cb.db"), "--bus", "memory",
         "--host", "127.0.0.1", "--port", str(port)],
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


def run_client(script: str, port: int, *args: str) -> dict[str, Any]:
    """Run an ngsildclient script in its venv; return the JSON of its last stdout line."""
    proc = subprocess.run([str(CLIENT_PY), str(SCRIPTS / script), str(port), *args], cwd=SCRIPTS,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{script} failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{script} printed no result:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_entity_crud(server: int) -> None:
    r = run_client("crud.py", server)
    assert r["connected"] is True
    assert r["created"] is True and r["exists"] is True
    got = r["got"]
    assert got["id"] == "urn:ngsi-ld:AirQualityObserved:CRUD:Obs1" and got["type"] == "AirQualityObserved"
    assert got["pm25"] == {"type": "Property", "value": 12.5, "observedAt": "2024-01-01T00:00:00Z"} or (
        got["pm25"]["value"] == 12.5 and got["pm25"]["observedAt"].startswith("2024-01-01T00:00:00"))
    assert got["name"]["value"] == "Sensor 1"
    assert got["location"]["value"] == {"type": "Point", "coordinates": [-8.6, 44.0]}
    assert got["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:D1"}
    assert "@context" in r["got_raw"]  # the client asks application/ld+json: context in the body
    assert r["conflict"] == "NgsiAlreadyExistsError"  # 409 ProblemDetails mapped by the client
    assert r["upserted"] is True and r["after_upsert"] == 20.0
    assert r["updated"] is True and r["after_update"] == 30.0
    assert r["deleted"] is True and r["exists_after_delete"] is False


def test_query_with_count(server: int) -> None:
    r = run_client("query.py", server)
    assert (r["created_ok"], r["created_err"]) == (127, 0)
    assert r["count_parks"] == 120 and r["count_roads"] == 7 and r["count_none"] == 0
    assert r["count_q"] == 40  # i % 3 == 0
    assert r["count_range"] == 10
    assert r["query_all"] == sorted(f"urn:ngsi-ld:ParkingSpot:Q:P{i:03d}" for i in range(120))  # 2 pages of 100
    assert r["query_q"] == [f"urn:ngsi-ld:ParkingSpot:Q:P{i:03d}" for i in range(116, 120)]
    assert r["query_head"] == 5
    assert {"ParkingSpot", "RoadSegment"} <= set(r["types"])


def test_batch_upsert(server: int) -> None:
    r = run_client("batch.py", server)
    assert r["first"] == [250, 0] and r["again"] == [250, 0]
    assert r["v7_speed"] == 27.0
    assert r["merged"] == [3, 0] and r["merged_attrs"] == ["brand", "colour", "speed"]  # options=update merges
    assert r["replaced"] == [3, 0] and r["replaced_attrs"] == ["colour"]  # options=replace replaces
    assert r["updated"] == [5, 0] and r["v12_speed"] == 99
    assert r["count"] == 250
    assert r["deleted"] == [200, 0] and r["count_after"] == 50


class _Sink(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    headers_seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(json.loads(body))
        type(self).headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_subscriptions(server: int) -> None:
    _Sink.received, _Sink.headers_seen = [], []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{sink.server_address[1]}/notify"
        r = run_client("subscriptions.py", server, url)
        sid = r["id"]
        assert sid.startswith("urn:") and r["exists"] is True
        assert sid in r["listed"]  # (the client's conflicts() hash also covers the status members we add)
        assert r["got"]["id"] == sid and r["got"]["notification"]["endpoint"]["uri"] == url
        assert r["got"]["watchedAttributes"] == ["temperature"]
        assert unquote(r["got"]["q"]) == "temperature>20"  # the client URL-escapes q; kept as sent
        deadline = time.monotonic() + 10
        while not _Sink.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _Sink.received, "no notification reached the subscriber"
        time.sleep(0.5)  # a second (wrong) notification would arrive by now
        assert len(_Sink.received) == 1, _Sink.received
        note = _Sink.received[0]
        assert note["type"] == "Notification" and note["subscriptionId"] == sid
        assert [e["id"] for e in note["data"]] == ["urn:ngsi-ld:WeatherObserved:S:W1"]
        assert note["data"][0]["temperature"]["value"] == 25.0
        assert _Sink.headers_seen[0]["content-type"].startswith("application/ld+json")  # endpoint.accept
        status = httpx.get(f"http://127.0.0.1:{server}/ngsi-ld/v1/subscriptions/{sid}").json()
        assert status["notification"]["timesSent"] >= 1 and "lastNotification" in status["notification"]
        purged = run_client("subscriptions.py", server, url, "purge")
        assert purged["before"] >= 1 and purged["after"] == 0
    finally:
        sink.shutdown()
        sink.server_close()


def test_temporal(server: int) -> None:
    r = run_client("temporal.py", server)
    series = [100, 110, 120, 130, 140, 150]
    times = [f"2024-03-01T0{i}:00:00" for i in range(6)]
    got = r["get"]  # simplified TRoE (options=temporalValues)
    assert got["id"] == "urn:ngsi-ld:TrafficFlowObserved:T:F1"
    assert [v[0] for v in got["intensity"]["values"]] == series
    assert [v[1][:19] for v in got["intensity"]["values"]] == times
    verbose = r["verbose"]["intensity"]  # normalized TRoE: one instance per value
    assert [i["value"] for i in verbose] == series and all(i["type"] == "Property" for i in verbose)
    assert [v[0] for v in r["last2"][0]["intensity"]["values"]] == [140, 150]
    by_type = {e["id"]: [v[0] for v in e["intensity"]["values"]] for e in r["by_type"]}
    assert by_type == {"urn:ngsi-ld:TrafficFlowObserved:T:F1": series, "urn:ngsi-ld:TrafficFlowObserved:T:F2": [7]}
    between = {e["id"]: [v[0] for v in e["intensity"]["values"]] for e in r["between"]}
    assert between["urn:ngsi-ld:TrafficFlowObserved:T:F1"] == [120, 130]
    agg = {e["id"]: e["intensity"] for e in r["aggregate"]}
    f1 = agg["urn:ngsi-ld:TrafficFlowObserved:T:F1"]
    assert f1["avg"][0][0] == 125 and f1["max"][0][0] == 150 and f1["totalCount"][0][0] == 6
    assert f1["avg"][0][1].startswith("2024-03-01T00:00:00")
