"""Benchmark: MQTT device ingest (state + history + subscriptions, durable, QoS 1), observations/s.

Usage: python bench/bench_mqtt.py [--broker 127.0.0.1:1883] [--n 20000] [--devices 20] [--runs 3]

The same publisher (paho-mqtt, QoS 1, up to 1,000 in flight) sends `--n` IoT Agent JSON measurements
({"t": …, "seq": k, "TimeInstant": …}) over `--devices` devices through the same Mosquitto to:

- **citybrain**: `citybrain serve --mqtt …` as a subprocess on a temporary SQLite store (WAL, synchronous=NORMAL)
  with the devices provisioned and an NGSI-LD subscription on the entity type notifying a local HTTP sink, so
  every observation updates entity state, lands in history (committed before the QoS 1 acknowledgement) and
  runs the subscription matcher; notifications are POSTed to the sink. All components run, so every observation
  also feeds the situation, the rules, the anomaly detectors and the plan triggers. Done when every device's
  entity shows its last `seq` (polled every 0.1 s through the NGSI-LD API); the history row count of the first
  device is checked afterwards. The sink and the poller run in this process, beside the publisher.
- **raw paho-mqtt**: a subscriber process (QoS 1) that only counts messages: the broker's delivery ceiling.
- **Node-RED 4**: `mqtt in → json → function → mqtt out` (QoS 1), run headless; a counting subscriber on the
  output topic. Node-RED is installed with npm into build/node-red by this script if missing.

Rate = n / (time from the first publish to the last message handled). The cases run in rounds (citybrain,
raw paho-mqtt, Node-RED, then the next round), so a change in the machine's load hits every case of a round
alike; the per-round ratios are printed too. Median of `--runs`. The markdown table is printed; JSON goes to
bench/results/mqtt-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from procs import stop_process  # bench/procs.py (bench/ is on sys.path when a script runs)

ROOT = Path(__file__).resolve().parents[1]
NODE_RED_DIR = ROOT / "build" / "node-red"
NODE_RED_JS = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
PEER_DIR = ROOT / "bench" / "peers" / "node-red"
ETYPE = "BenchSensor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mqtt_client(cid: str) -> paho.Client:
    """An MQTT 5 paho client. Like citybrain's, it asks the broker for a Receive Maximum of 65,535: with
    MQTT 3.1.1 Mosquitto keeps only 20 QoS 1 messages in flight per subscriber and drops what exceeds
    max_queued_messages (1,000) behind them, so a burst would lose messages for any consumer."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    return c


def connect(c: paho.Client, host: str, port: int) -> None:
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 65535
    c.connect(host, port, clean_start=True, properties=props)


def publish(host: str, port: int, topics: list[str], n: int) -> float:
    """Publish n QoS 1 messages round-robin over topics; return the wall time of the first publish."""
    c = mqtt_client(f"bench-pub-{uuid.uuid4().hex[:8]}")
    acked = threading.Event()
    count = [0]

    def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        count[0] += 1
        if count[0] == n:
            acked.set()

    c.on_publish = on_publish
    connect(c, host, port)
    c.loop_start()
    base = time.time()
    t0 = time.time()
    for k in range(n):
        stamp = dt.datetime.fromtimestamp(base + k * 1e-3, dt.UTC).isoformat(timespec="milliseconds")
        payload = json.dumps({"t": 20.0 + (k % 100) / 10, "seq": k, "TimeInstant": stamp.replace("+00:00", "Z")})
        c.publish(topics[k % len(topics)], payload, qos=1)
    acked.wait(600)
    c.loop_stop()
    c.disconnect()
    return t0


# ---------------------------------------------------------------- counting subscriber (a subprocess)

def count_subscriber(host: str, port: int, topic: str, n: int) -> None:
    """Subscribe with QoS 1, print READY, count n messages, print the wall time of the last one."""
    c = mqtt_client(f"bench-sub-{uuid.uuid4().hex[:8]}")
    done = threading.Event()
    seen = [0]

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        print("READY", flush=True)

    last = [0.0]

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        seen[0] += 1
        last[0] = time.time()
        if seen[0] >= n:
            print(f"DONE {last[0]:.6f} {seen[0]}", flush=True)
            done.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    connect(c, host, port)
    c.loop_start()
    deadline = time.monotonic() + 600
    while not done.wait(0.5):
        if (last[0] and time.time() - last[0] > 10) or time.monotonic() > deadline:
            print(f"DONE {last[0]:.6f} {seen[0]}", flush=True)  # idle for 10 s: the rest was lost
            break
    c.loop_stop()


LOSSES: dict[str, list[int]] = {}


def run_counted(host: str, port: int, sub_topic: str, pub_topics: list[str], n: int, case: str) -> float:
    """Start a counting subscriber process, publish, return delivered / elapsed (losses go to LOSSES)."""
    proc = subprocess.Popen([sys.executable, __file__, "--count-subscriber", sub_topic, "--n", str(n),
                             "--broker", f"{host}:{port}"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    t0 = publish(host, port, pub_topics, n)
    line = proc.stdout.readline().strip()
    proc.wait(60)
    if not line.startswith("DONE") or line.split()[2] == "0":
        raise RuntimeError(f"subscriber on {sub_topic}: {line!r}")
    _, at, seen = line.split()
    LOSSES.setdefault(case, []).append(n - int(seen))
    return int(seen) / (float(at) - t0)


# ---------------------------------------------------------------- citybrain

class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as any real notification endpoint
    notifications = 0
    entities = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        type(self).notifications += 1
        type(self).entities += len(body.get("data", []))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class CityBrainCase:
    """citybrain serve with MQTT ingest on a temporary store, devices provisioned for every run."""

    def __init__(self, host: str, port: int, devices: int, runs: int) -> None:
        self.host, self.mport, self.devices, self.runs = host, port, devices, runs
        self.tmp = Path(tempfile.mkdtemp(prefix="cb-bench-mqtt-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)

    def start(self) -> None:
        store = str(self.tmp / "cb.db")
        devs = [{"device_id": f"r{r}d{i}", "apikey": "cbbench", "entity_type": ETYPE,
                 "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                                {"object_id": "seq", "name": "seq", "type": "Integer"}]}
                for r in range(self.runs) for i in range(self.devices)]
        (self.tmp / "devices.json").write_text(json.dumps(devs))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        env["CITYBRAIN_AUTH"] = "off"  # `citybrain serve` authenticates by default
        subprocess.run([sys.executable, "-m", "citybrain", "devices", "import", str(self.tmp / "devices.json"),
                        "--store", store], check=True, env=env, cwd=ROOT, capture_output=True)
        url = f"mqtt://{self.host}:{self.mport}?client_id=cb-bench-{uuid.uuid4().hex[:8]}"
        self.log = open(self.tmp / "serve.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citybrain", "serve", "--store", store, "--bus", "memory", "--host", "127.0.0.1",
             "--port", str(self.port), "--mqtt", url], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_health(self.port, self.proc)
        threading.Thread(target=self.sink.serve_forever, daemon=True).start()
        sub = {"type": "Subscription", "entities": [{"type": ETYPE}], "watchedAttributes": ["temperature"],
               "notification": {"endpoint": {"uri": f"http://127.0.0.1:{self.sink.server_address[1]}/n"},
                                "format": "keyValues"}}
        r = httpx.post(self.api("/subscriptions"), json=sub)
        r.raise_for_status()
        time.sleep(1.0)  # MQTT client connected and subscribed

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/ngsi-ld/v1{path}"

    def run(self, run: int, n: int) -> float:
        topics = [f"/cbbench/r{run}d{i}/attrs" for i in range(self.devices)]
        last = {f"urn:ngsi-ld:{ETYPE}:r{run}d{i}": max(k for k in range(n) if k % self.devices == i)
                for i in range(self.devices)}
        done_at = [0.0]
        stop = threading.Event()

        def poll() -> None:
            ids = ",".join(last)
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    r = c.get(self.api("/entities"), params={"id": ids, "attrs": "seq", "options": "keyValues",
                                                               "limit": 1000})
                    seqs = {e["id"]: e.get("seq") for e in r.json()}
                    if all(seqs.get(k) == v for k, v in last.items()):
                        done_at[0] = time.time()
                        return
                    time.sleep(0.1)

        poller = threading.Thread(target=poll)
        poller.start()
        t0 = publish(self.host, self.mport, topics, n)
        poller.join(600)
        stop.set()
        if not done_at[0]:
            raise RuntimeError("citybrain did not store every observation")
        first = next(iter(last))
        hist = httpx.get(self.api(f"/temporal/entities/{first}"),
                         params={"attrs": "seq", "options": "temporalValues"}, timeout=60).json()
        rows = len(hist.get("seq", {}).get("values", []))
        expected = len([k for k in range(n) if k % self.devices == 0])
        if rows != expected:
            raise RuntimeError(f"history of {first}: {rows} rows, expected {expected}")
        return n / (done_at[0] - t0)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, self.log)
        self.sink.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_health(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"citybrain exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("citybrain did not become healthy")


# ---------------------------------------------------------------- Node-RED

def ensure_node_red() -> None:
    """Install node-red@4 into build/node-red with npm unless it is there."""
    if NODE_RED_JS.exists():
        return
    NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
    print("installing node-red@4 into build/node-red …", file=sys.stderr)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(NODE_RED_DIR),
                    "node-red@4"], check=True)


class NodeRedCase:
    """Node-RED 4 headless with bench/peers/node-red/flows.json (mqtt in → json → function → mqtt out)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.mport = host, port
        self.tmp = Path(tempfile.mkdtemp(prefix="cb-bench-nodered-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ensure_node_red()
        flows = json.loads((PEER_DIR / "flows.json").read_text())
        for node in flows:
            if node.get("type") == "mqtt-broker":
                node["broker"], node["port"] = self.host, str(self.mport)
                node["clientid"] = f"nodered-bench-{uuid.uuid4().hex[:8]}"
        (self.tmp / "flows.json").write_text(json.dumps(flows))
        env = {**os.environ, "NODE_RED_PORT": str(free_port())}
        self.log_path = self.tmp / "node-red.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["node", str(NODE_RED_JS), "--settings", str(PEER_DIR / "settings.js"), "--userDir", str(self.tmp),
             str(self.tmp / "flows.json")], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "Connected to broker" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Node-RED did not connect: {self.log_path.read_text(errors='replace')}")
            time.sleep(0.2)

    def version(self) -> str:
        pkg = NODE_RED_DIR / "node_modules" / "node-red" / "package.json"
        return str(json.loads(pkg.read_text())["version"]) if pkg.exists() else "?"

    def run(self, run: int, n: int, devices: int) -> float:
        topics = [f"bench/nodered/r{run}d{i}/attrs" for i in range(devices)]
        return run_counted(self.host, self.mport, f"bench/nodered-out/r{run}/#", topics, n, "Node-RED")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, self.log)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- main

def write_results(name: str, figures: list[dict[str, Any]]) -> Path:
    date = dt.date.today().isoformat()
    out = ROOT / "bench" / "results" / f"{name}-{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": name, "date": date, "figures": figures}, indent=2) + "\n")
    return out


def print_table(figures: list[dict[str, Any]], runs: dict[str, list[float]]) -> None:
    print("| figure | unit | ours (median) | peer | peer (median) | ours/peer |")
    print("|---|---|---:|---|---:|---:|")
    for f in figures:
        peer = f"{f['peer']:,.0f}" if f["peer"] is not None else "–"
        ratio = f"{f['ratio']:.2f}" if f["ratio"] is not None else "–"
        print(f"| {f['figure']} | {f['unit']} | {f['ours']:,.0f} | {f['peer_name']} | {peer} | {ratio} |")
    print()
    for case, values in runs.items():
        lost = f"; messages lost per run: {LOSSES[case]}" if case in LOSSES else ""
        print(f"- {case} runs: {', '.join(f'{v:,.0f}' for v in values)}{lost}")
    for case in ("raw paho-mqtt", "Node-RED"):
        if runs[case]:
            pairs = zip(runs["citybrain"], runs[case], strict=False)
            print(f"- citybrain/{case} per round: {', '.join(f'{a / b:.2f}' for a, b in pairs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count-subscriber", help=argparse.SUPPRESS)
    ap.add_argument("--skip-node-red", action="store_true")
    args = ap.parse_args()
    host, _, p = args.broker.partition(":")
    port = int(p or 1883)
    if args.count_subscriber:
        count_subscriber(host, port, args.count_subscriber, args.n)
        return

    runs: dict[str, list[float]] = {"citybrain": [], "raw paho-mqtt": [], "Node-RED": []}
    cb = CityBrainCase(host, port, args.devices, args.runs)
    nr = None if args.skip_node_red else NodeRedCase(host, port)
    nr_version = "?"
    try:
        cb.start()
        if nr is not None:
            nr.start()
            nr_version = nr.version()
        # one round = one run of every case back to back, so a change in the machine's load (2 cores,
        # shared) hits every case of that round alike; the idle cases wait meanwhile
        for r in range(args.runs):
            runs["citybrain"].append(cb.run(r, args.n))
            topics = [f"bench/raw/r{r}d{i}/attrs" for i in range(args.devices)]
            runs["raw paho-mqtt"].append(run_counted(host, port, "bench/raw/+/attrs", topics, args.n,
                                                     "raw paho-mqtt"))
            if nr is not None:
                runs["Node-RED"].append(nr.run(r, args.n, args.devices))
        print(f"notifications received: {_Sink.notifications} carrying {_Sink.entities} entity changes",
              file=sys.stderr)
    finally:
        cb.stop()
        if nr is not None:
            nr.stop()

    ours = statistics.median(runs["citybrain"])
    figure = "MQTT → state + history + subscriptions (durable, QoS 1)"
    figures: list[dict[str, Any]] = []
    for peer_key, peer_name, anchor in (
        ("raw paho-mqtt", f"raw paho-mqtt {paho_version()} subscriber, QoS 1, count only (same Mosquitto)", ""),
        ("Node-RED", f"Node-RED {nr_version}: mqtt in → json → function → mqtt out, QoS 1 (no persistence)",
         "target: at least Node-RED's rate while also persisting"),
    ):
        peer = statistics.median(runs[peer_key]) if runs[peer_key] else None
        figures.append({"figure": figure, "unit": "observations/s", "ours": round(ours, 1),
                        "peer": round(peer, 1) if peer else None, "peer_name": peer_name,
                        "ratio": round(ours / peer, 3) if peer else None, "anchor": anchor})
    print_table(figures, runs)
    print(f"\n{args.n} messages, {args.devices} devices, median of {args.runs}; results: "
          f"{write_results('mqtt', figures).relative_to(ROOT)}")


def paho_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("paho-mqtt")


if __name__ == "__main__":
    main()
