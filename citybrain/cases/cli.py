"""`citybrain cases …`: list, show and run every case step from the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from citybrain.config import Settings

cases_app = typer.Typer(help="Cases: report, file, dispatch, handle, verify, close, evaluate; exceptions.",
                        no_args_is_help=True, add_completion=False)
console = Console()
STORE = typer.Option(None, help="SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]")
ACTOR = typer.Option(..., "--as", help="who acts, as role:name (supervisor:li, command:wang, dept:urban:zhao)")
NOTE = typer.Option("", help="note for the timeline")


def _with_runtime(store: str | None, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from citybrain.errors import CityBrainError
    from citybrain.runtime import CityBrain

    async def main() -> Any:
        settings = Settings.from_env(store=store)
        settings.extra.setdefault("cases", {})["checker"] = False
        async with CityBrain(settings) as rt:
            return await work(rt)

    try:
        return asyncio.run(main())
    except CityBrainError as exc:
        typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from None


def _step(store: str | None, command: str, actor: str, payload: dict[str, Any]) -> None:
    async def work(rt: Any) -> Any:
        ctx = rt.context(actor)
        if command == "case.file":
            return await rt.ports.cases.file(payload["id"], ctx, payload.get("note", ""))
        return await rt.ports.cases.run(command, payload, ctx)

    typer.echo(json.dumps(_with_runtime(store, work), ensure_ascii=False, indent=2, default=str))


@cases_app.command("list")
def list_cases(state: str = typer.Option(None), department: str = typer.Option(None),
               overdue: bool = typer.Option(None, "--overdue/--on-time"), queue: str = typer.Option(None),
               limit: int = typer.Option(50), store: str = STORE) -> None:
    """List cases, newest first, with filters."""
    from citybrain.cases.views import find

    found = _with_runtime(store, lambda rt: find(rt, state, department, overdue, queue=queue))
    table = Table(title=f"{len(found)} cases")
    for col in ("id", "state", "category", "departments", "deadline", "overdue"):
        table.add_column(col, overflow="fold")
    for c in found[:limit]:
        table.add_row(c["id"], c["state"], c["category"], ",".join(c["departments"]) or (c.get("queue") or ""),
                      str(c.get("deadline") or ""), "yes" if c.get("overdue") else "")
    console.print(table)


@cases_app.command()
def show(case_id: str, store: str = STORE) -> None:
    """Show one case with its tasks and timeline (JSON)."""

    async def work(rt: Any) -> Any:
        from citybrain.cases.views import with_clocks

        case = await rt.ports.cases.read(case_id)
        if case is None:
            raise typer.BadParameter(f"case {case_id} not found")
        return with_clocks(rt, case)

    typer.echo(json.dumps(_with_runtime(store, work), ensure_ascii=False, indent=2))


@cases_app.command()
def report(category: str, description: str = typer.Option(""), place: str = typer.Option(None),
           lon: float = typer.Option(None), lat: float = typer.Option(None),
           channel: str = typer.Option("grid", help="grid, community, hotline, supervisor …"),
           actor: str = typer.Option("grid:cli", "--as"), store: str = STORE) -> None:
    """Report a problem (case.intake); trusted channels are filed and routed at once."""

    async def work(rt: Any) -> Any:
        return await rt.ports.cases.submit({"category": category, "description": description, "place": place,
                                                  "lon": lon, "lat": lat, "channel": channel}, rt.context(actor))

    typer.echo(json.dumps(_with_runtime(store, work), ensure_ascii=False, indent=2))


@cases_app.command("file")
def file_case(case_id: str, actor: str = ACTOR, note: str = NOTE, store: str = STORE) -> None:
    """File a reported case (supervisor); routed at once when a rule matches."""
    _step(store, "case.file", actor, {"id": case_id, "note": note})


@cases_app.command()
def dispatch(case_id: str, actor: str = ACTOR, lead: str = typer.Option(None),
             assist: list[str] = typer.Option([], help="assisting department (repeat)"), note: str = NOTE,
             store: str = STORE) -> None:
    """Dispatch a filed case (command centre) to the routed or the named departments."""
    _step(store, "case.dispatch", actor, {"id": case_id, "lead": lead, "assist": assist, "note": note})


def _simple(name: str, command: str, doc: str) -> None:
    def run(case_id: str, actor: str = ACTOR, note: str = NOTE, task: str = typer.Option(None),
            store: str = STORE) -> None:
        payload: dict[str, Any] = {"id": case_id, "note": note}
        if task is not None:
            payload["task"] = task
        _step(store, command, actor, payload)

    run.__doc__ = doc
    cases_app.command(name)(run)


_simple("accept", "case.accept", "A department accepts its task.")
_simple("feedback", "case.feedback", "A department reports its task done.")
_simple("close", "case.close", "Close a verified case (supervisor).")
_simple("resume", "case.resume", "Take a case out of the problem ledger (command centre).")


@cases_app.command()
def verify(case_id: str, actor: str = ACTOR, failed: bool = typer.Option(False, "--failed"), note: str = NOTE,
           store: str = STORE) -> None:
    """Verify on site (supervisor); --failed sends it back to the departments."""
    _step(store, "case.verify", actor, {"id": case_id, "passed": not failed, "note": note})


@cases_app.command()
def evaluate(case_id: str, score: int = typer.Option(5, min=1, max=5), actor: str = ACTOR, note: str = NOTE,
             store: str = STORE) -> None:
    """Evaluate a closed case (1–5)."""
    _step(store, "case.evaluate", actor, {"id": case_id, "score": score, "note": note})


@cases_app.command()
def exception(case_id: str, kind: str = typer.Argument(..., help="send_back, extension, suspend or cancel"),
              reason: str = typer.Option(...), hours: float = typer.Option(0.0), actor: str = ACTOR,
              task: str = typer.Option(None), store: str = STORE) -> None:
    """Ask for an exception (approval needed)."""
    _step(store, "case.request_exception", actor,
          {"id": case_id, "kind": kind, "reason": reason, "hours": hours, "task": task})


@cases_app.command()
def approve(case_id: str, exception_id: str, reject: bool = typer.Option(False, "--reject"), actor: str = ACTOR,
            note: str = NOTE, store: str = STORE) -> None:
    """Approve (or --reject) an exception request."""
    _step(store, "case.approve_exception", actor,
          {"id": case_id, "exception": exception_id, "approve": not reject, "note": note})


@cases_app.command()
def merge(case_id: str, into: str = typer.Option(...), actor: str = ACTOR, note: str = NOTE,
          store: str = STORE) -> None:
    """Merge a duplicate case into the case it repeats."""
    _step(store, "case.merge", actor, {"id": case_id, "into": into, "note": note})


@cases_app.command()
def check(store: str = STORE) -> None:
    """Run the deadline checker once (warnings, escalations)."""
    from citybrain.cases.deadlines import check_deadlines

    typer.echo(json.dumps(_with_runtime(store, check_deadlines)))


@cases_app.command()
def stats(store: str = STORE) -> None:
    """Counts by state and the share routed without the command centre."""
    from citybrain.cases.views import stats as case_stats

    typer.echo(json.dumps(_with_runtime(store, case_stats), indent=2))


@cases_app.command("check-catalog")
def check_catalog(catalog: str = typer.Option(None), calendar: str = typer.Option(None),
                  routing: str = typer.Option(None), matters: str = typer.Option(None)) -> None:
    """Validate catalog, calendar, routing and one-matter files; errors name file, line and field."""
    from citybrain.cases.catalog import load_catalog
    from citybrain.cases.yamlfile import CatalogError

    try:
        cat = load_catalog(catalog, calendar, routing, matters)
    except CatalogError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {len(cat.categories)} categories, {len(cat.router.rules)} routing rules, "
               f"{len(cat.calendars)} calendars, {len(cat.matters)} one-matter services")
