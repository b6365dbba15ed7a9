"""Prometheus metrics at /metrics, in the plain text exposition format (version 0.0.4).

Written by hand (no client library): every value is read at scrape time from the services the runtime
already has (`ingest`, `mqtt`, `ngsi_notifier`, `cases`), found with getattr so a node without a
component still answers, plus what the ops middleware and bus listeners count.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class OpsStats:
    """What the middleware and listeners count for /metrics."""

    inflight: int = 0
    draining: bool = False
    responses: dict[int, int] = field(default_factory=dict)
    shed: dict[str, int] = field(default_factory=dict)
    write_buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    write_sum: float = 0.0
    write_count: int = 0
    lag_seconds: float | None = None  # now - newest observedAt in the last stored batch
    escalations: int = 0  # case SLA breaches seen on the bus (escalations of overdue clocks)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=120))

    def observe(self, status: int, seconds: float, write: bool) -> None:
        """Count one response (and its duration, for writes)."""
        self.responses[status] = self.responses.get(status, 0) + 1
        if write and seconds > 0:
            self.write_buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.write_sum += seconds
            self.write_count += 1

    def rate(self, total: int) -> float:
        """Return observations/s over the last ~10 s of scrapes (0 on the first)."""
        now = time.monotonic()
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= 10.0:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now - t0 > 0.2 else 0.0


class Exposition:
    """Builds the text: HELP and TYPE once per metric, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> None:
        """Add one metric with its labelled samples."""
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def one(self, name: str, kind: str, help_: str, value: float | None) -> None:
        """Add an unlabelled metric (skipped when the value is unknown)."""
        if value is not None:
            self.add(name, kind, help_, [({}, value)])

    def histogram(self, name: str, help_: str, buckets: list[int], total: float, count: int) -> None:
        """Add a histogram: cumulative _bucket samples, _sum and _count."""
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} histogram")
        cumulative = 0
        for bound, n in zip((*BUCKETS, float("inf")), buckets, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            self.lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        self.lines.append(f"{name}_sum {_number(round(total, 6))}")
        self.lines.append(f"{name}_count {count}")

    def text(self) -> str:
        """Return the exposition, newline-terminated."""
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _rss_bytes() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            import os

            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None


def _bus_backlog(bus: Any) -> int | None:
    """Messages fetched from the bus and not yet handled (NATS pull buffers; memory queues)."""
    if hasattr(bus, "backlog"):
        value = bus.backlog
        return int(value() if callable(value) else value)
    subs = getattr(bus, "_subs", None)
    if subs is None:
        return None
    total = 0
    for sub in list(subs):
        for attr in ("_buf", "queue", "_queue"):
            held = getattr(sub, attr, None)
            if held is not None and hasattr(held, "__len__"):
                total += len(held)
                break
            if held is not None and hasattr(held, "qsize"):
                total += held.qsize()
                break
    return total


def render(rt: CityBrain, stats: OpsStats) -> str:
    """Return every metric of the node as Prometheus text."""
    out = Exposition()
    ingest = rt.services.get("ingest")
    by_type: dict[str, int] = dict(getattr(ingest, "stored_by_type", {}) or {})
    total = sum(by_type.values())
    out.add("citybrain_observations_stored_total", "counter", "Observations committed to state and history.",
            [({"type": t}, n) for t, n in sorted(by_type.items())] or [({"type": ""}, 0)])
    out.one("citybrain_observations_rejected_total", "counter", "Observations rejected (dead-lettered).",
            getattr(ingest, "rejected", None))
    out.one("citybrain_ingest_batches_total", "counter", "Ingest batches committed.", getattr(ingest, "batches", None))
    out.one("citybrain_ingest_rate", "gauge", "Observations stored per second over the last ~10 s of scrapes.",
            round(stats.rate(total), 3))
    out.one("citybrain_ingest_lag_seconds", "gauge",
            "Now minus the newest observedAt of the last stored batch (freshness of live data).", stats.lag_seconds)
    out.one("citybrain_store_pending_writes", "gauge", "Write batches waiting for the store writer.",
            rt.store.pending)
    out.one("citybrain_store_commits_total", "counter", "Store transactions committed.",
            getattr(rt.store, "commits", None))
    out.one("citybrain_store_reconnects_total", "counter", "Times the store reconnected to its database.",
            getattr(rt.store, "reconnects", None))
    out.one("citybrain_bus_backlog", "gauge", "Bus messages received and not yet handled.", _bus_backlog(rt.bus))
    healthy = getattr(rt.bus, "healthy", None)
    out.one("citybrain_bus_up", "gauge", "1 while the bus connection is up.",
            None if healthy is None else float(bool(healthy)))
    mqtt = rt.services.get("mqtt")
    if mqtt is not None:
        received, stored, rejected = (getattr(mqtt, k, 0) for k in ("received", "stored", "rejected"))
        out.one("citybrain_mqtt_received_total", "counter", "MQTT messages received.", received)
        out.one("citybrain_mqtt_stored_total", "counter", "Observations stored from MQTT.", stored)
        out.one("citybrain_mqtt_rejected_total", "counter", "MQTT messages dead-lettered.", rejected)
        connected = getattr(mqtt, "connected", None)
        out.one("citybrain_mqtt_connected", "gauge", "1 while connected to the broker.",
                float(connected.is_set()) if connected is not None else None)
    notifier = rt.services.get("ngsi_notifier")
    watches = getattr(notifier, "watches", None)
    if watches is not None:
        statuses = [getattr(w, "status", {}) or {} for w in list(watches.values())]
        out.one("citybrain_ngsi_subscriptions", "gauge", "Live NGSI-LD subscriptions.", len(statuses))
        out.one("citybrain_ngsi_notifications_sent_total", "counter", "NGSI-LD notifications delivered.",
                sum(int(s.get("timesSent", 0) or 0) for s in statuses))
        out.one("citybrain_ngsi_notification_failures_total", "counter",
                "NGSI-LD notifications that failed after retries.",
                sum(int(s.get("timesFailed", 0) or 0) for s in statuses))
        out.one("citybrain_ngsi_notification_queue", "gauge", "Entity changes waiting to be notified.",
                sum(w.queue.qsize() for w in list(watches.values()) if hasattr(w, "queue")))
    cases = rt.services.get("cases")
    breaches = getattr(cases, "sla_breaches", None)
    if cases is not None:
        out.one("citybrain_case_sla_breaches_total", "counter",
                "Case or task time limits breached (escalations of overdue clocks).",
                breaches if breaches is not None else stats.escalations)
        routed = getattr(cases, "routed", None)
        if isinstance(routed, dict):
            out.add("citybrain_cases_dispatched_total", "counter", "Cases dispatched since start, by who decided.",
                    [({"by": k}, v) for k, v in sorted(routed.items())])
    out.add("citybrain_http_responses_total", "counter", "HTTP responses by status code.",
            [({"code": str(c)}, n) for c, n in sorted(stats.responses.items())] or [({"code": "200"}, 0)])
    out.add("citybrain_http_shed_total", "counter", "Write requests refused by admission control, by reason.",
            [({"reason": r}, n) for r, n in sorted(stats.shed.items())] or [({"reason": "Overloaded"}, 0)])
    out.one("citybrain_http_writes_in_progress", "gauge", "Write requests being served.", stats.inflight)
    out.histogram("citybrain_http_write_duration_seconds", "Duration of admitted write requests.",
                  stats.write_buckets, stats.write_sum, stats.write_count)
    out.one("citybrain_draining", "gauge", "1 while the node drains for shutdown.", float(stats.draining))
    out.one("process_resident_memory_bytes", "gauge", "Resident memory of the process.", _rss_bytes())
    return out.text()
