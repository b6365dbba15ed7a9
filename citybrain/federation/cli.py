"""`citybrain nodes | outbox | directive send | directive receipts`: the federation from the command line.

These commands talk to a running node's HTTP API (--url, env CITYBRAIN_URL), because the node's own
sender and receiver loops must do the sending: the CLI never writes to a node's store behind its back.
Register with ``app.add_typer(federation_app)`` (no name: the commands join the top level).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

federation_app = typer.Typer(help="City and community nodes: links, outbox, directives.", no_args_is_help=True)
directive_app = typer.Typer(help="Directives down to communities, with read and done receipts.", no_args_is_help=True)
federation_app.add_typer(directive_app, name="directive")
console = Console()

URL_HELP = "base URL of the node's HTTP API [env CITYBRAIN_URL]"
KEY_HELP = "API key or token when the node has auth=on [env CITYBRAIN_API_KEY]"


def _client(url: str | None, key: str | None) -> httpx.Client:
    base = url or os.environ.get("CITYBRAIN_URL", "http://127.0.0.1:8080")
    token = key or os.environ.get("CITYBRAIN_API_KEY")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=10)


def _call(url: str | None, key: str | None, method: str, path: str, body: Any = None) -> Any:
    """Call the node's API; print the problem and exit 1 on an error status."""
    with _client(url, key) as client:
        try:
            r = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach the node: {exc}", err=True)
            raise typer.Exit(2) from None
    if r.status_code >= 400:
        typer.echo(f"{r.status_code}: {r.text}", err=True)
        raise typer.Exit(1)
    return r.json()


@federation_app.command()
def nodes(url: str = typer.Option(None, help=URL_HELP), api_key: str = typer.Option(None, help=KEY_HELP),
          as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List this node and its linked nodes with link status and backlog up / down."""
    rows = _call(url, api_key, "GET", "/api/v1/nodes")
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(rows)} nodes")
    for col in ("node", "role", "area", "link", "backlog up", "backlog down", "last seq"):
        table.add_column(col)
    for n in rows:
        table.add_row(n["node"] + (" (this node)" if n["self"] else ""), n["role"], n["area"], n["link"]["state"],
                      str(n.get("backlog_up")), str(n.get("backlog_down")), str(n.get("last_seq", "")))
    console.print(table)


@federation_app.command()
def outbox(url: str = typer.Option(None, help=URL_HELP), api_key: str = typer.Option(None, help=KEY_HELP),
           limit: int = typer.Option(50, help="how many waiting messages to list")) -> None:
    """Show what is waiting to go up or down, per channel, oldest first."""
    data = _call(url, api_key, "GET", f"/api/v1/outbox?limit={limit}")
    console.print(f"link: {data['link']}   waiting per channel: {data['backlog'] or 'none'}")
    table = Table()
    for col in ("created", "channel", "kind", "seq", "id"):
        table.add_column(col)
    for m in data["messages"]:
        table.add_row(m["created"], m["channel"], m["kind"], str(m["seq"] or "-"), m["id"])
    console.print(table)


@directive_app.command("send")
def directive_send(to: str = typer.Option(..., "--to", help="community URN, node id, a place, or '*'"),
                   text: str = typer.Option(..., "--text", help="what to do"),
                   notice: bool = typer.Option(False, help="a notice (read receipt only) instead of a directive"),
                   url: str = typer.Option(None, help=URL_HELP),
                   api_key: str = typer.Option(None, help=KEY_HELP)) -> None:
    """Issue a directive from the city node to communities."""
    body = {"target": to, "text": text, "kind": "notice" if notice else "directive"}
    result = _call(url, api_key, "POST", "/api/v1/directives", body)
    typer.echo(f"directive {result['id']} queued to {', '.join(result['nodes'])}")


@directive_app.command("receipts")
def directive_receipts(directive_id: str = typer.Argument(..., help="the directive's id"),
                       url: str = typer.Option(None, help=URL_HELP),
                       api_key: str = typer.Option(None, help=KEY_HELP)) -> None:
    """Show who has read and done a directive."""
    data = _call(url, api_key, "GET", f"/api/v1/directives/{directive_id}/receipts")
    d = data["directive"]
    console.print(f"{d['id']}: {d['text']!r} → {d.get('target', '')}")
    table = Table()
    for col in ("node", "read", "done"):
        table.add_column(col)
    for node, state in sorted(data["nodes"].items()):
        table.add_row(node, state["read"] or "-", state["done"] or "-")
    console.print(table)
