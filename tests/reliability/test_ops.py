"""The operational surface: /metrics exposition, JSON log lines, and the checker against a lossy store."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import httpx

from citybrain.api import create_app
from citybrain.config import Settings
from citybrain.ops.logs import configure_logging, current_context
from citybrain.runtime import CityBrain
from reliability.check import check
from reliability.faults import drop_every
from reliability.load import stamp

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+Inf]+$')


async def test_metrics_are_valid_prometheus_text_with_ingest_and_queue_figures(tmp_path: Path) -> None:
    rt = CityBrain(Settings(store=str(tmp_path / "m.db")))
    app = create_app(rt)
    async with app.router.lifespan_context(app):
        await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:RelSensor:m", "type": "RelSensor"}})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            items = [{"entity": "urn:ngsi-ld:RelSensor:m", "attr": "seq", "observedAt": stamp(k), "value": k}
                     for k in range(5)]
            r = await client.post("/api/v1/observations", json=items, headers={"X-Request-Id": "req-42"})
            assert r.headers["x-request-id"] == "req-42"
            text = (await client.get("/metrics")).text
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert all(SAMPLE.match(ln) for ln in lines), [ln for ln in lines if not SAMPLE.match(ln)]
    stored = [ln for ln in lines if ln.startswith('citybrain_observations_stored_total{type="RelSensor"}')]
    assert stored and float(stored[0].rsplit(" ", 1)[1]) == 5
    for name in ("citybrain_store_pending_writes", "citybrain_bus_backlog", "citybrain_ingest_rate",
                 "citybrain_ngsi_notification_failures_total", "citybrain_case_sla_breaches_total",
                 "citybrain_http_write_duration_seconds_count", "process_resident_memory_bytes"):
        assert any(ln.startswith(name) for ln in lines), name
    assert "# TYPE citybrain_http_write_duration_seconds histogram" in text


def test_json_logs_carry_context_and_never_secrets() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(json=True, stream=out)
        token = current_context.set("01JCONTEXT")
        logging.getLogger("citybrain.test").warning("store at postgresql://u:hunter2@db/x ready",
                                                    extra={"api_key": "abc", "rows": 3})
        current_context.reset(token)
        logging.getLogger("citybrain.test").info("no context")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert {"time", "level", "logger", "message"} <= set(first)
    assert first["context"] == "01JCONTEXT" and first["level"] == "warning" and first["rows"] == 3
    assert "hunter2" not in out.getvalue() and first["api_key"] == "***"
    assert "context" not in second


async def test_checker_reports_loss_from_a_store_that_drops_every_100th_row(tmp_path: Path) -> None:
    db = str(tmp_path / "lossy.db")
    async with CityBrain(Settings(store=db)) as rt:
        drop_every(rt.store, 100)
        await rt.execute("entity.write", {"entity": {"id": "urn:ngsi-ld:RelSensor:h0", "type": "RelSensor"}})
        for start in range(0, 1000, 50):
            items = [{"entity": "urn:ngsi-ld:RelSensor:h0", "attr": "seq", "observedAt": stamp(k), "value": k}
                     for k in range(start, start + 50)]
            report = await rt.ports.ingest.submit(items)
            assert report.stored == 50  # acknowledged as stored
    found = await _check(db, {"urn:ngsi-ld:RelSensor:h0": set(range(1000))})
    assert found["lost"] == 10 and found["stored"] == 990 and found["duplicates"] == 0


async def _check(db: str, acked: dict[str, set[int]]) -> dict[str, int]:
    import asyncio

    return await asyncio.to_thread(check, db, acked)


async def test_case_escalations_count_as_sla_breaches(tmp_path: Path) -> None:
    import asyncio

    rt = CityBrain(Settings(store=str(tmp_path / "s.db")))
    app = create_app(rt)
    async with app.router.lifespan_context(app):
        await rt.emit("command.case.escalate", {"id": "case-1", "level": 1}, record=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for _ in range(50):
                text = (await client.get("/metrics")).text
                if "citybrain_case_sla_breaches_total 1.0" in text:
                    break
                await asyncio.sleep(0.05)
    assert "citybrain_case_sla_breaches_total 1.0" in text


async def test_metrics_parse_with_prometheus_client_behind_auth(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    rt = CityBrain(Settings(store=str(tmp_path / "p.db"), auth="on"))
    app = create_app(rt)
    async with app.router.lifespan_context(app):
        key = (tmp_path / "p.db.admin-key").read_text().strip()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code in (401, 403)  # no credential, no figures
            auth = {"Authorization": f"Bearer {key}"}
            await client.post("/ngsi-ld/v1/entities", headers=auth,
                              json={"id": "urn:ngsi-ld:RelSensor:p", "type": "RelSensor"})
            assert (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:RelSensor:p", headers=auth)).status_code == 200
            r = await client.get("/metrics", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    routes = {(s.labels.get("route"), s.labels.get("method"), s.labels.get("code"))
              for s in families["citybrain_http_request_duration_seconds"].samples if s.name.endswith("_count")}
    assert ("/ngsi-ld/v1/entities/{entity_id}", "GET", "200") in routes  # the fast lane names its template
    assert ("/ngsi-ld/v1/entities", "POST", "201") in routes
    assert families["citybrain_partition_owned"].samples  # one sample per pipeline partition
    owned = {s.labels["partition"]: s.value for s in families["citybrain_partition_owned"].samples}
    assert set(owned.values()) == {1.0}  # one process owns every partition
    jobs = {s.labels["job"]: s.value for s in families["citybrain_singleton_job_running"].samples}
    assert jobs.get("ledger") == 1.0
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "citybrain_store_pending_writes",
                 "citybrain_bus_backlog", "citybrain_observations_stored"):
        assert name in families, name
