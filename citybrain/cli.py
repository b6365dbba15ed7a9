"""The `citybrain` command line: the core commands here, and every component's from its manifest (imported when it runs)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from citybrain import __version__
from citybrain.components import Command, commands, resolve
from citybrain.config import Settings

if TYPE_CHECKING:
    from typer._click import Command as ClickCommand  # typer vendors its own click
    from typer._click import Context


class Deferred(TyperCommand):
    """A component's sub-command, listed with its manifest's help and imported only when it runs."""

    def __init__(self, spec: Command) -> None:
        super().__init__(spec.name, help=spec.help)
        self.spec = spec
        self._loaded: ClickCommand | None = None

    def load(self) -> ClickCommand:
        """Import the command and build it exactly as `app.add_typer` / `app.command` would have."""
        if self._loaded is None:
            target = resolve(self.spec.target, "app")
            wiring = typer.Typer(pretty_exceptions_short=app.pretty_exceptions_short,
                                 rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
            if not isinstance(target, typer.Typer):
                wiring.command(self.spec.name)(target)
            elif self.spec.merged:  # its commands join the top level
                wiring.add_typer(target)
            else:
                wiring.add_typer(target, name=self.spec.name)
            self._loaded = typer.main.get_group(wiring).commands[self.spec.name]
        return self._loaded

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: Any) -> Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)


class Commands(TyperGroup):
    """`citybrain`: the core commands of this module, then every component's (from the manifests), deferred."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for spec in commands():
            if spec.name in self.commands:
                raise RuntimeError(f"citybrain {spec.name}: a component's command has the name of a core command")
            self.commands[spec.name] = Deferred(spec)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, ClickCommand | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, Deferred) and name is not None:
            cmd = self.commands[name] = cmd.load()
        return name, cmd, rest


app = typer.Typer(help="citybrain: an open-source city brain.", no_args_is_help=True, add_completion=False,
                  cls=Commands)
console = Console()

STORE_HELP = "SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]"
BUS_HELP = "'memory' or nats://host:port [env CITYBRAIN_BUS]"


def settings_from(**overrides: Any) -> Settings:
    """Build settings from the environment plus the given non-None CLI options."""
    return Settings.from_env(**overrides)


@app.command()
def version() -> None:
    """Print citybrain's version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: str = typer.Option(None, help="interface to listen on [env CITYBRAIN_HOST]"),
    port: int = typer.Option(None, help="HTTP port [env CITYBRAIN_PORT]"),
    store: str = typer.Option(None, help=STORE_HELP),
    bus: str = typer.Option(None, help=BUS_HELP),
    node_id: str = typer.Option(None, "--node-id", help="this node's id [env CITYBRAIN_NODE_ID]"),
    role: str = typer.Option(None, help="city or community [env CITYBRAIN_ROLE]"),
    parent: str = typer.Option(None, help="parent city node's nats:// URL (community role) [env CITYBRAIN_PARENT]"),
    area: str = typer.Option(None, help="place URN this node runs (community role) [env CITYBRAIN_AREA]"),
    mqtt: str = typer.Option(None, help="MQTT broker URL for device ingest [env CITYBRAIN_MQTT]"),
    demo: bool = typer.Option(False, help="load the demo city and replay its recorded data while serving"),
    speed: float = typer.Option(600.0, help="demo replay speed (600 = one recorded hour every 6 s)"),
    replay: bool = typer.Option(True, help="with --demo: replay the recorded data (--no-replay: city only)"),
    size: str = typer.Option("small", help="with --demo: city size (tiny, small, medium, large)"),
    auth: str = typer.Option(None, help="'on' (default): every request needs an API key or token; "
                             "'off': a single local operator, for a demo on your own machine [env CITYBRAIN_AUTH]"),
    log_format: str = typer.Option("json", help="'json' (one object per line, secrets removed) or 'text'"),
) -> None:
    """Run a citybrain node: the HTTP API (and the dashboard), ingest and every component."""
    import uvicorn

    from citybrain.api import create_app
    from citybrain.api.server import limited_protocol
    from citybrain.ops.logs import configure_logging
    from citybrain.runtime import CityBrain

    configure_logging(json=log_format != "text")
    settings = settings_from(host=host, port=port, store=store, bus=bus, node_id=node_id, role=role,
                             parent=parent, area=area, mqtt=mqtt,
                             auth=auth or os.environ.get("CITYBRAIN_AUTH") or "on")
    rt = CityBrain(settings)
    base = f"http://{settings.host}:{settings.port}"

    async def _demo() -> None:
        from citybrain.demo import Replay, load_demo_city

        async def load_and_replay() -> None:
            # one process of the node loads and replays (a lease); the others see the city through events
            console.print("loading the demo city …")
            await load_demo_city(rt, size=size)
            if replay:
                await Replay(rt, speed=speed, loop=True).run()

        rt.cluster.singleton("demo", load_and_replay, restart=replay)

    async def _announce() -> None:
        console.print(f"[bold green]citybrain {__version__}[/] serving on {base}")
        console.print(f"  dashboard: {base}/")
        console.print(f"  API docs:  {base}/docs   health: {base}/-/health")
        console.print(f"  store: {settings.public()['store']}   bus: {settings.public()['bus']}")

    api = create_app(rt, startup=[_demo, _announce] if demo else [_announce])
    # header and body deadlines and a header size cap against slow or endless clients (citybrain/api/server.py)
    http = limited_protocol(settings.header_timeout, settings.body_timeout, settings.max_header_bytes)
    uvicorn.run(api, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                log_config=None, timeout_graceful_shutdown=30, http=http,
                h11_max_incomplete_event_size=settings.max_header_bytes)


@app.command()
def demo(
    duration: float = typer.Option(60.0, help="seconds of wall time to replay"),
    speed: float = typer.Option(600.0, help="replay speed: recorded seconds per wall second"),
    store: str = typer.Option(None, help=STORE_HELP + " (default: a fresh temporary file)"),
    bus: str = typer.Option(None, help=BUS_HELP),
    start: str = typer.Option(None, help="recorded time to start from, e.g. 2016-07-15T00:00:00Z"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run the demo city headless for a while and print what was ingested, per type."""
    import tempfile

    from citybrain.runtime import CityBrain

    tmp = None
    if store is None and not os.environ.get("CITYBRAIN_STORE"):
        tmp = tempfile.TemporaryDirectory(prefix="citybrain-demo-")
        store = str(Path(tmp.name) / "demo.db")

    async def main() -> dict[str, Any]:
        from citybrain.demo import load_demo_city, run_demo

        async with CityBrain(settings_from(store=store, bus=bus)) as rt:
            city = await load_demo_city(rt)
            summary = await run_demo(rt, duration=duration, speed=speed, start=start)
            summary["entities"] = await rt.store.entity_types()
            summary["city"] = getattr(city, "summary", lambda: {})()
            return summary

    summary = asyncio.run(main())
    if tmp is not None:
        tmp.cleanup()
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"demo: {summary['observations']} observations ingested")
    table.add_column("type")
    table.add_column("observations", justify="right")
    for kind, count in sorted(summary["by_type"].items()):
        table.add_row(kind, str(count))
    console.print(table)
    console.print(f"recorded time replayed: {summary.get('simulated_from')} → {summary.get('simulated_to')}; "
                  f"rejected: {summary.get('rejected', 0)}")


@app.command()
def deadletters(
    store: str = typer.Option(None, help=STORE_HELP),
    limit: int = typer.Option(100, help="how many to list"),
    replay: bool = typer.Option(False, help="resubmit dead-lettered observations"),
    show_all: bool = typer.Option(False, "--all", help="include already replayed ones"),
) -> None:
    """List messages that could not be processed, with the reason (and optionally replay them)."""
    from citybrain.runtime import CityBrain

    async def main() -> None:
        async with CityBrain(settings_from(store=store)) as rt:
            if replay:
                from citybrain.ingest.deadletters import replay as run_replay

                typer.echo(json.dumps(await run_replay(rt)))
                return
            letters = await rt.store.deadletters(limit, include_replayed=show_all)
            table = Table(title=f"{len(letters)} dead letters")
            for col in ("seq", "time", "source", "reason", "payload"):
                table.add_column(col, overflow="fold")
            for d in letters:
                table.add_row(str(d.seq), d.time, d.source, d.reason, d.payload[:120])
            console.print(table)

    asyncio.run(main())


def main() -> None:
    """Entry point for python -m citybrain."""
    app()


if __name__ == "__main__":
    main()
