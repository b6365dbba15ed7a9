"""Turn each benchmark's own JSON into figures: {figure, unit, ours, peer, peer_name, ratio, better, anchor}.

Older benchmarks write their own shapes; newer ones write {"name", "date", "figures": [...]} already. One
small adapter per shape; a shape nobody adapted is reported as such instead of being guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Figure = dict[str, Any]


def figure(name: str, unit: str, ours: float | None, peer: float | None = None, peer_name: str = "",
           better: str = "higher", anchor: str = "") -> Figure:
    """Return one normalised figure; the ratio is ours/peer (for 'lower is better' figures too)."""
    ratio = round(ours / peer, 3) if ours is not None and peer else None
    return {"figure": name, "unit": unit, "ours": ours, "peer": peer, "peer_name": peer_name, "ratio": ratio,
            "better": better, "anchor": anchor}


def store(doc: dict[str, Any]) -> list[Figure]:
    """bench_store.py: store ingest vs raw executemany, per database."""
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    return [figure(f"durable ingest → state + history ({names.get(r['db'], r['db'])})", "obs/s",
                   r.get("store_obs_s"), r.get("raw_obs_s"),
                   f"raw executemany into the same {names.get(r['db'], r['db'])} tables")
            for r in doc.get("results", []) if "store_obs_s" in r]


def bus(doc: dict[str, Any]) -> list[Figure]:
    """bench_bus.py: NatsBus vs raw nats-py JetStream."""
    return [figure(f"bus {r['case']}", "msg/s", r.get("bus_msgs_per_s"), r.get("raw_msgs_per_s"),
                   "raw nats-py JetStream") for r in doc.get("results", [])]


def situation(doc: dict[str, Any]) -> list[Figure]:
    """bench_situation.py: pipeline throughput, alert latency vs the bare bus floor."""
    out = [figure("situation + rules pipeline", "obs/s", doc.get("pipeline_obs_per_s_rules_only")),
           figure("situation + rules + detectors pipeline", "obs/s", doc.get("pipeline_obs_per_s_with_detectors"))]
    for key, lat in sorted(doc.items()):
        if key.startswith("latency_at_") and isinstance(lat, dict):
            for q in ("p50", "p99"):
                out.append(figure(f"observation → alert {q} at {lat.get('rate_target')} obs/s", "ms",
                                  lat.get(f"alert_{q}_ms"), lat.get(f"bus_floor_{q}_ms"),
                                  "bare bus publish → callback on the same loop", better="lower"))
    return out


def ledger(doc: dict[str, Any]) -> list[Figure]:
    """bench_ledger.py: durable appends vs the published Tessera anchor; access-log overhead."""
    anchor = float(doc.get("anchor", {}).get("tessera_entries_per_s", 10_000.0))
    out = []
    for db in ("sqlite", "postgresql"):
        r = doc.get(db)
        if isinstance(r, dict) and "appends_per_s" in r:
            out.append(figure(f"ledger durable appends ({db})", "entries/s", r["appends_per_s"], anchor,
                              "Tessera (published, not run here)", anchor="Tessera: ~10,000 entries/s on local disk"))
    acc = doc.get("access_logging")
    if isinstance(acc, dict):
        out.append(figure("NGSI-LD GET with access logging to the ledger", "ms", acc.get("with_access_log_ms_median"),
                          acc.get("ngsi_get_ms_median"), "the same GET without access logging", better="lower"))
    return out


def cases(doc: dict[str, Any]) -> list[Figure]:
    """bench_cases.py: cases filed + dispatched via HTTP vs straight to the runtime."""
    api, peer = doc.get("api", {}), doc.get("peer_direct_runtime", {})
    out = [figure("cases filed + dispatched through the HTTP API", "cases/s", api.get("per_second"),
                  peer.get("per_second"), "the same reports submitted straight to the runtime")]
    lat = doc.get("alert_to_dispatch", {})
    for q in ("p50", "p99"):
        out.append(figure(f"alert → case dispatched {q}", "ms", lat.get(f"{q}_ms"), better="lower"))
    return out


def federation(doc: dict[str, Any]) -> list[Figure]:
    """bench_federation.py: community → city messages vs raw JetStream; catch-up after a partition."""
    raw = doc.get("raw_nats_py", {})
    fed = doc.get("federation", {})
    cu = doc.get("catch_up", {})
    return [figure("federation community → city (outbox, JetStream, idempotent apply)", "msg/s", _r(fed.get("msgs_s")),
                   _r(raw.get("end_to_end_msgs_s")), "raw nats-py publish_async + pull consumer"),
            figure("federation catch-up after a partition", "msg/s", _r(cu.get("catch_up_msgs_s"))),
            figure("catch-up of a 10-minute partition at 100 msg/s (extrapolated)", "s",
                   _r(cu.get("extrapolated_10min_catch_up_s")), better="lower")]


LOWER_IS_BETTER = frozenset({"s", "ms", "us", "µs", "%", "seconds", "milliseconds"})


def standard(doc: dict[str, Any]) -> list[Figure]:
    """Newer benchmarks: {"figures": [...]} in the normalised shape already."""
    out = []
    for f in doc.get("figures", []):
        unit = str(f.get("unit", ""))
        better = str(f.get("better") or ("lower" if unit in LOWER_IS_BETTER else "higher"))
        g = figure(str(f.get("figure")), unit, f.get("ours"), f.get("peer"), str(f.get("peer_name") or ""), better,
                   str(f.get("anchor") or ""))
        if f.get("ratio") is not None:
            g["ratio"] = f["ratio"]
        out.append(g)
    return out


def _r(value: Any) -> float | None:
    return round(float(value), 1) if isinstance(value, int | float) else None


ADAPTERS: dict[str, Callable[[dict[str, Any]], list[Figure]]] = {
    "store": store, "bus": bus, "situation": situation, "ledger": ledger, "cases": cases, "federation": federation,
}


def adapt(name: str, doc: dict[str, Any]) -> tuple[list[Figure], str]:
    """Return the figures of one benchmark result and a note ('' when adapted cleanly)."""
    if isinstance(doc.get("figures"), list):
        return standard(doc), ""
    fn = ADAPTERS.get(name)
    if fn is None:
        return [], f"no adapter for the shape of {name}'s result; see its JSON"
    try:
        return fn(doc), ""
    except (KeyError, TypeError, ValueError) as exc:
        return [], f"adapter for {name} failed: {exc!r}"


# Peers that cannot run on this machine: published figures, quoted with their source, never measured here.
ANCHORS: list[dict[str, str]] = [
    {"peer": "Orion-LD (FIWARE NGSI-LD broker)", "compare_with": "NGSI-LD entity create/query rates (bench_ngsi)",
     "source": "https://github.com/FIWARE/context.Orion-LD (doc/manuals-ld; needs MongoDB, not installable here)"},
    {"peer": "ThingsBoard", "compare_with": "MQTT → state + history (bench_mqtt)",
     "source": "https://thingsboard.io/docs/reference/performance-aws-instances/ (msg/s per AWS instance type)"},
    {"peer": "IoT Agent JSON (FIWARE)", "compare_with": "MQTT IoT Agent JSON ingest (bench_mqtt)",
     "source": "https://github.com/telefonicaid/iotagent-json (needs Orion + MongoDB)"},
    {"peer": "QuantumLeap (FIWARE time series)", "compare_with": "history writes (bench_store)",
     "source": "https://github.com/orchestracities/ngsi-timeseries-api (needs CrateDB/TimescaleDB + Orion)"},
    {"peer": "Tessera (transparency-dev)", "compare_with": "ledger durable appends (bench_ledger)",
     "source": "https://github.com/transparency-dev/tessera (~10,000 entries/s quoted by bench_ledger)"},
]
