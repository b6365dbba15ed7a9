"""Drills run a plan in a sandbox and write a report; the live store is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citybrain.drill import run_drill
from citybrain.drill.cli import drill_command
from citybrain.plans.loader import LIBRARY


def short_plan(tmp_path: Path) -> Path:
    """The rainstorm plan over a shorter stretch of the recorded rainstorm, with a short recovery."""
    text = (LIBRARY / "rainstorm.yaml").read_text(encoding="utf-8")
    text = text.replace('start: "2016-07-19 18:00"', 'start: "2016-07-20 07:00"')
    text = text.replace('end: "2016-07-22 12:00"', 'end: "2016-07-21 15:00"').replace("recovery: 6h", "recovery: 1h")
    path = tmp_path / "rainstorm-short.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.timeout(60)
async def test_drill_writes_a_report_and_leaves_live_state_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a live store would be var/citybrain.db here: it must not appear
    result = await run_drill(str(short_plan(tmp_path)), tmp_path / "out")
    r = result.report
    assert sorted(p.suffix for p in result.files) == [".html", ".json", ".md"]
    assert r["runs"][0]["state"] == "closed" and r["runs"][0]["confirmed_by"] == "system:auto-confirm"
    assert r["final_mode"]["mode"] == "normal"
    assert r["tasks"]["issued"] == r["tasks"]["done"] > 20
    assert r["tasks"]["ack_minutes"]["median"] is not None and r["resources"]["resources"] >= 3
    kinds = [e["type"] for e in r["timeline"]]
    assert kinds.index("command.plan.propose") < kinds.index("command.plan.confirm") < kinds.index("command.plan.end")
    md = (tmp_path / "out" / "drill-rainstorm.md").read_text(encoding="utf-8")
    assert "## Timeline" in md and "time to acknowledge" in md
    assert json.loads((tmp_path / "out" / "drill-rainstorm.json").read_text())["plan"] == "rainstorm"
    assert not (tmp_path / "var" / "citybrain.db").exists()


def test_drill_cli_reports_a_bad_plan_clearly(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(drill_command)
    bad = tmp_path / "bad.yaml"
    bad.write_text("plan: x\ntasks:\n  - {id: a, department: nobody, task: t, within: 1h}\n", encoding="utf-8")
    out = CliRunner().invoke(app, [str(bad), "--out", str(tmp_path)])
    assert out.exit_code == 1
    assert "bad.yaml:3: tasks[0].department: unknown department 'nobody'" in out.output


async def test_handlers_skip_a_run_that_ended_since_their_copy_was_read() -> None:
    """Another process (or the plan's own follow-up) may end a run between reading it and reporting on it."""
    from types import SimpleNamespace
    from typing import Any

    from citybrain.drill.handlers import Handlers
    from citybrain.errors import Conflict

    calls: list[str] = []

    async def execute(name: str, data: dict[str, Any], ctx: object) -> None:
        calls.append(name)
        raise Conflict(f"plan run {data['run']} is not active")

    run = {"id": "run-1", "plan": "rainstorm", "state": "active", "area": "urn:ngsi-ld:City:x",
           "confirmed_at": "2016-07-20T07:00:00Z"}
    places = SimpleNamespace(of_type=lambda kind: [SimpleNamespace(id="urn:ngsi-ld:Community:c1")],
                             within=lambda place, area: True)
    desk = SimpleNamespace(runs={"run-1": run}, plans={"rainstorm": SimpleNamespace(reporting=60.0)})
    rt = SimpleNamespace(ports=SimpleNamespace(plans=desk, places=places), execute=execute, context=lambda actor: actor)
    handlers = Handlers(rt)  # type: ignore[arg-type]
    assert await handlers._reports(4_000_000_000.0) == 0
    assert calls == ["plan.report"] and "run-1" not in handlers.last_report
