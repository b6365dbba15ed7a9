"""The drill report: timeline, tasks issued, time to acknowledge and complete, resources used (md, html, json)."""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.clock import parse_time
from citybrain.plans.spec import Plan
from citybrain.plans.tasks import TASKS

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

KEY_EVENTS = ("command.plan.propose", "command.plan.confirm", "command.plan.reject", "command.plan.end",
              "command.plan.close", "mode.changed", "plan.overrides.applied", "plan.overrides.restored",
              "command.plan.tasks.issue", "command.dispatch.run", "command.dispatch.release")


def _minutes(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((parse_time(b) - parse_time(a)).total_seconds() / 60.0, 1)


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "median": None, "mean": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 1),
            "mean": round(statistics.fmean(values), 1), "max": round(max(values), 1)}


def _line(e: Any) -> str:
    d = e.data
    t = e.type
    if t == "mode.changed":
        return f"{d['area'].rsplit(':', 1)[-1]}: {d['from']['mode']} → {d['mode']} {d.get('level') or ''}".strip()
    if t.startswith("command.plan.") and "step" in d:
        return f"{d['plan']} {d['step']}: {d['state']} level {d.get('level') or d.get('proposed')} {d['note'][:160]}"
    if t == "command.plan.tasks.issue":
        return (f"{len(d['tasks'])} tasks issued at level {d['level']} to {len(d['departments'])} departments and "
                f"{d['communities']} communities ({len(d['cases'])} cases)")
    if t == "command.dispatch.run":
        return f"{len(d['assignments'])} resource assignments, {d['total_minutes']} unit-minutes, unmet {d['unmet']}"
    if t == "plan.overrides.applied":
        return f"overrides in force: rules {[r['rule'] for r in d['rules']]}, detector {d['detector_threshold']}"
    if t == "plan.overrides.restored":
        return f"overrides restored: {d['rules']}"
    return json.dumps(d, ensure_ascii=False)[:200]


async def build_report(rt: CityBrain, plan: Plan, start: str, end: str, replay: dict[str, Any], size: str,
                       seconds: float) -> dict[str, Any]:
    """Collect the drill's figures from the sandbox's event history and documents."""
    events = []
    after = 0
    while True:
        batch = await rt.store.events(after=after, limit=5000)
        if not batch:
            break
        events += batch
        after = batch[-1].seq or after + len(batch)
    timeline = [{"time": e.time, "type": e.type, "what": _line(e)} for e in events if e.type in KEY_EVENTS]
    tasks = [d.data for d in await rt.store.list_docs(TASKS, limit=1_000_000)]
    rows = []
    for t in sorted(tasks, key=lambda t: (t["issued_at"], t["key"])):
        rows.append({"task": t["task"], "assignee": t["assignee"].rsplit(":", 1)[-1], "kind": t["kind"],
                     "level": t["level"], "issued_at": t["issued_at"], "state": t["state"], "case": t.get("case"),
                     "ack_minutes": _minutes(t["issued_at"], t["acknowledged_at"]),
                     "done_minutes": _minutes(t["issued_at"], t["done_at"]),
                     "on_time": bool(t["done_at"] and t["done_at"] <= t["deadline"])})
    incidents = await rt.ports.dispatch.incidents()
    used = [{**a, "place": i["place"]} for i in incidents for a in i["assignments"]]
    counts: dict[str, int] = {}
    for e in events:
        counts[e.type] = counts.get(e.type, 0) + 1
    runs = [d.data for d in await rt.store.list_docs("plan_runs", limit=1000)]
    city = rt.ports.modes.city()
    return {
        "plan": plan.id, "name": plan.name, "size": size, "scenario": {"start": start, "end": end, **plan.scenario},
        "sandbox": "temporary SQLite store, in-process bus, FakeClock", "wall_seconds": round(seconds, 2),
        "observations": replay.get("observations"), "hours": replay.get("batches"),
        "runs": [{k: r[k] for k in ("id", "state", "level", "proposed_at", "confirmed_at", "confirmed_by",
                                    "ended_at", "closed_at", "end_reason")} | {"proposals": r["proposals"]}
                 for r in runs],
        "final_mode": rt.ports.modes.mode_of(city) if city else None,
        "timeline": timeline,
        "tasks": {"issued": len(rows), "departments": sorted({t["department"] for t in tasks if t["department"]}),
                  "communities": len({t["assignee"] for t in tasks if t["kind"] == "community"}),
                  "acknowledged": sum(1 for r in rows if r["ack_minutes"] is not None),
                  "done": sum(1 for r in rows if r["done_minutes"] is not None),
                  "on_time": sum(1 for r in rows if r["on_time"]),
                  "ack_minutes": _summary([r["ack_minutes"] for r in rows if r["ack_minutes"] is not None]),
                  "done_minutes": _summary([r["done_minutes"] for r in rows if r["done_minutes"] is not None]),
                  "rows": rows},
        "resources": {"assignments": used, "resources": len({a["resource"] for a in used}),
                      "unit_minutes": round(sum(a["units"] * a["minutes"] for a in used), 1)},
        "alerts": counts.get("alert.raised", 0), "cases_opened": counts.get("command.case.intake", 0),
        "community_reports": counts.get("command.plan.report", 0), "events": len(events),
    }


def markdown(r: dict[str, Any]) -> str:
    """Render the report as Markdown."""
    t = r["tasks"]
    out = [f"# Drill: {r['name']}", "",
           f"Scenario {r['scenario']['start']} → {r['scenario']['end']} ({r['hours']} recorded hours, "
           f"{r['observations']} observations), demo city size {r['size']}, {r['sandbox']}; "
           f"{r['wall_seconds']} s wall time.", "",
           f"Final mode of the city: **{(r['final_mode'] or {}).get('mode')}**. Alerts raised: {r['alerts']}; "
           f"cases opened: {r['cases_opened']}; community report batches: {r['community_reports']}.", "",
           "## Timeline", "", "| time (UTC) | event | what |", "|---|---|---|"]
    out += [f"| {e['time']} | {e['type']} | {e['what'].replace('|', '/')} |" for e in r["timeline"]]
    out += ["", "## Tasks", "",
            f"{t['issued']} tasks issued to {len(t['departments'])} departments ({', '.join(t['departments'])}) "
            f"and {t['communities']} communities; {t['acknowledged']} acknowledged, {t['done']} done, "
            f"{t['on_time']} on time.", "",
            "| | n | median (min) | mean (min) | max (min) |", "|---|---|---|---|---|",
            *(f"| time to {k} | {s['n']} | {s['median']} | {s['mean']} | {s['max']} |"
              for k, s in (("acknowledge", t["ack_minutes"]), ("complete", t["done_minutes"]))), "",
            "| task | assignee | level | issued | ack (min) | done (min) | on time | case |",
            "|---|---|---|---|---|---|---|---|"]
    out += [f"| {x['task']} | {x['assignee']} | {x['level']} | {x['issued_at']} | {x['ack_minutes']} | "
            f"{x['done_minutes']} | {'yes' if x['on_time'] else 'no'} | {x['case'] or ''} |" for x in t["rows"]]
    res = r["resources"]
    out += ["", "## Resources", "", f"{res['resources']} resources dispatched, {res['unit_minutes']} unit-minutes "
            "of travel on the road graph.", "", "| resource | capability | units | to | minutes |", "|---|---|---|---|---|"]
    out += [f"| {a['name']} | {a['capability']} | {a['units']} | {a['place'].rsplit(':', 1)[-1]} | {a['minutes']} |"
            for a in res["assignments"]]
    return "\n".join(out) + "\n"


def to_html(md: str, title: str) -> str:
    """Render the Markdown report as a plain HTML page (tables and headings)."""
    body: list[str] = []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if body and body[-1].startswith("<tr>") and not line.startswith("|"):
            body.append("</table>")
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line:
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
        if line.startswith("## ") or (not line and body and not body[-1].startswith("<table")):
            pass
    text = "\n".join(body).replace("</p>\n<tr>", "</p>\n<table>\n<tr>").replace("</h2>\n<tr>", "</h2>\n<table>\n<tr>")
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{border:1px solid #ccc;padding:2px 6px}"
            f"table{{border-collapse:collapse}}</style><body>\n{text}\n</body></html>\n")


def write_report(report: dict[str, Any], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write the report in the given formats (md, html, json); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"drill-{report['plan']}"
    md = markdown(report)
    files: list[Path] = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "json":
            path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        elif fmt == "md":
            path.write_text(md, encoding="utf-8")
        elif fmt == "html":
            path.write_text(to_html(md, f"Drill {report['plan']}"), encoding="utf-8")
        else:
            raise ValueError(f"format: {fmt!r} is not md, html or json")
        files.append(path)
    return files
