"""Prometheus metrics at /metrics, through prometheus_client.

Each runtime has its own registry (tests start many runtimes in one process). Request latency is a
histogram per route template, method and status class, observed by the admission middleware; everything
else is read at scrape time from the services the runtime already has (`ingest`, `mqtt`, `ngsi_notifier`,
`cases`, the store, the bus, the cluster) by one collector, found with getattr so that a node without a
component still answers. The process collector adds CPU, memory, open files and start time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from citybrain.ports import Ports

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class OpsStats:
    """What the middleware and listeners count for /metrics, and the registry holding the histograms."""

    inflight: int = 0
    draining: bool = False
    responses: dict[int, int] = field(default_factory=dict)
    shed: dict[str, int] = field(default_factory=dict)
    lag_seconds: float | None = None  # now - newest observedAt in the last stored batch
    escalations: int = 0  # case SLA breaches seen on the bus (escalations of overdue clocks)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=120))
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Histogram = field(init=False)
    writes: Histogram = field(init=False)
    collecting: bool = False  # the node and process collectors are registered

    def __post_init__(self) -> None:
        self.requests = Histogram("citybrain_http_request_duration_seconds",
                                  "Duration of HTTP requests by route template, method and status code.",
                                  ["route", "method", "code"], registry=self.registry, buckets=BUCKETS)
        self.writes = Histogram("citybrain_http_write_duration_seconds", "Duration of admitted write requests.",
                                registry=self.registry, buckets=BUCKETS)

    def observe(self, status: int, seconds: float, write: bool, route: str = "unmatched",
                method: str = "GET") -> None:
        """Count one response, its latency per route, and (for writes) the write latency."""
        self.responses[status] = self.responses.get(status, 0) + 1
        self.requests.labels(route, method, str(status)).observe(max(0.0, seconds))
        if write and seconds > 0:
            self.writes.observe(seconds)

    def rate(self, total: int) -> float:
        """Return observations/s over the last ~10 s of scrapes (0 on the first)."""
        now = time.monotonic()
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= 10.0:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now - t0 > 0.2 else 0.0


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


def _gauge(name: str, help_: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, help_, value=value)


def _counter(name: str, help_: str, value: float | None) -> Iterator[Metric]:
    if value is not None:  # prometheus_client adds the _total suffix
        yield CounterMetricFamily(name.removesuffix("_total"), help_, value=value)


class NodeCollector(Collector):
    """Reads the node's figures at scrape time."""

    def __init__(self, rt: CityBrain, stats: OpsStats) -> None:
        self.rt = rt
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """Yield every figure of the node."""
        rt, stats = self.rt, self.stats
        ingest = rt.ports.find(Ports.ingest)
        by_type: dict[str, int] = dict(getattr(ingest, "stored_by_type", {}) or {})
        stored = CounterMetricFamily("citybrain_observations_stored", "Observations committed to state and history.",
                                     labels=["type"])
        for kind, n in sorted(by_type.items()) or [("", 0)]:
            stored.add_metric([kind], n)
        yield stored
        yield from _counter("citybrain_observations_rejected_total", "Observations rejected (dead-lettered).",
                            getattr(ingest, "rejected", None))
        yield from _counter("citybrain_ingest_batches_total", "Ingest batches committed.",
                            getattr(ingest, "batches", None))
        yield from _gauge("citybrain_ingest_rate", "Observations stored per second over the last ~10 s of scrapes.",
                          round(stats.rate(sum(by_type.values())), 3))
        yield from _gauge("citybrain_ingest_lag_seconds",
                          "Now minus the newest observedAt of the last stored batch (freshness of live data).",
                          stats.lag_seconds)
        yield from _gauge("citybrain_store_pending_writes", "Write batches waiting for the store writer (queue depth).",
                          rt.store.pending)
        yield from _counter("citybrain_store_commits_total", "Store transactions committed.",
                            getattr(rt.store, "commits", None))
        yield from _counter("citybrain_store_reconnects_total", "Times the store reconnected to its database.",
                            getattr(rt.store, "reconnects", None))
        yield from _gauge("citybrain_bus_backlog", "Bus messages received and not yet handled.", _bus_backlog(rt.bus))
        healthy = getattr(rt.bus, "healthy", None)
        yield from _gauge("citybrain_bus_up", "1 while the bus connection is up.",
                          None if healthy is None else float(bool(healthy)))
        yield from self._cluster()
        yield from self._features()
        responses = CounterMetricFamily("citybrain_http_responses", "HTTP responses by status code.", labels=["code"])
        for code, n in sorted(stats.responses.items()) or [(200, 0)]:
            responses.add_metric([str(code)], n)
        yield responses
        shed = CounterMetricFamily("citybrain_http_shed", "Write requests refused by admission control, by reason.",
                                   labels=["reason"])
        for reason, n in sorted(stats.shed.items()) or [("Overloaded", 0)]:
            shed.add_metric([reason], n)
        yield shed
        yield from _gauge("citybrain_http_writes_in_progress", "Write requests being served.", stats.inflight)
        yield from _gauge("citybrain_draining", "1 while the node drains for shutdown.", float(stats.draining))

    def _cluster(self) -> Iterator[Metric]:
        cluster = getattr(self.rt, "cluster", None)
        if cluster is None:
            return
        info = cluster.describe()
        yield from _gauge("citybrain_cluster_members", "Processes of this node this process sees alive.",
                          len(info["members"]))
        owned = GaugeMetricFamily("citybrain_partition_owned", "1 for each pipeline partition this process owns.",
                                  labels=["partition"])
        for n in range(info["partitions"]):
            owned.add_metric([str(n)], 1.0 if n in info["owned_partitions"] else 0.0)
        yield owned
        jobs = GaugeMetricFamily("citybrain_singleton_job_running", "1 for each singleton job this process runs.",
                                 labels=["job"])
        running = set(info["jobs"])
        for name in sorted(cluster.jobs):
            jobs.add_metric([name], 1.0 if name in running else 0.0)
        yield jobs
        relay = getattr(self.rt, "relay", None)
        if relay is not None:
            yield from _counter("citybrain_events_relayed_total", "Committed events the event relay published again.",
                                relay.relayed)
            yield from _counter("citybrain_events_recovered_total",
                                "Committed events that were not on the bus until the event relay published them.",
                                relay.recovered)

    def _features(self) -> Iterator[Metric]:
        rt, stats = self.rt, self.stats
        mqtt = rt.ports.find(Ports.mqtt)
        if mqtt is not None:
            for key, help_ in (("received", "MQTT messages received."), ("stored", "Observations stored from MQTT."),
                               ("rejected", "MQTT messages dead-lettered."),
                               ("redelivered", "MQTT messages the broker sent again (not acknowledged before).")):
                yield from _counter(f"citybrain_mqtt_{key}_total", help_, getattr(mqtt, key, 0))
            connected = getattr(mqtt, "connected", None)
            yield from _gauge("citybrain_mqtt_connected", "1 while connected to the broker.",
                              float(connected.is_set()) if connected is not None else None)
        notifier = rt.ports.find(Ports.ngsi_notifier)
        watches = getattr(notifier, "watches", None)
        if watches is not None:
            statuses = [getattr(w, "status", {}) or {} for w in list(watches.values())]
            yield from _gauge("citybrain_ngsi_subscriptions", "Live NGSI-LD subscriptions.", len(statuses))
            yield from _counter("citybrain_ngsi_notifications_sent_total", "NGSI-LD notifications delivered.",
                                sum(int(s.get("timesSent", 0) or 0) for s in statuses))
            yield from _counter("citybrain_ngsi_notification_failures_total",
                                "NGSI-LD notifications that failed after retries.",
                                sum(int(s.get("timesFailed", 0) or 0) for s in statuses))
            yield from _gauge("citybrain_ngsi_notification_queue", "Entity changes waiting to be notified.",
                              sum(w.queue.qsize() for w in list(watches.values()) if hasattr(w, "queue")))
        cases = rt.ports.find(Ports.cases)
        if cases is not None:
            breaches = getattr(cases, "sla_breaches", None)
            yield from _counter("citybrain_case_sla_breaches_total",
                                "Case or task time limits breached (escalations of overdue clocks).",
                                breaches if breaches is not None else stats.escalations)
            routed = getattr(cases, "routed", None)
            if isinstance(routed, dict):
                family = CounterMetricFamily("citybrain_cases_dispatched", "Cases dispatched since start, by who "
                                             "decided.", labels=["by"])
                for by, n in sorted(routed.items()):
                    family.add_metric([by], n)
                yield family


def registry_of(rt: CityBrain, stats: OpsStats) -> CollectorRegistry:
    """Register the node collector and the process collector in the stats' registry (once)."""
    if not stats.collecting:
        stats.registry.register(NodeCollector(rt, stats))
        ProcessCollector(registry=stats.registry)
        stats.collecting = True
    return stats.registry


def render(rt: CityBrain, stats: OpsStats) -> str:
    """Return every metric of the node as Prometheus text (exposition format 0.0.4)."""
    return generate_latest(registry_of(rt, stats)).decode()
