"""`citybrain users …`: add identities, list them, issue and revoke API keys, disable accounts.

The CLI acts as the local administrator on the node's own store: whoever can open the store file
(or the database) is an administrator of the node, so protect it with file permissions.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from citybrain.config import Settings

users_app = typer.Typer(help="Users and service accounts: add, list, API keys.", no_args_is_help=True)
console = Console()
STORE_HELP = "SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]"
CLI_ACTOR = "admin:cli"


def run(store: str | None, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open the node's runtime (model + trust only) on `store`, run `fn(rt)` and return its result."""
    from citybrain.runtime import CityBrain

    async def main() -> Any:
        settings = Settings.from_env(store=store)
        async with CityBrain(settings, components=["citybrain.model.commands", "citybrain.trust"]) as rt:
            return await fn(rt)

    from citybrain.errors import CityBrainError

    try:
        return asyncio.run(main())
    except CityBrainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="login name"),
    role: str = typer.Option(..., help="admin, city_operator, command_centre, supervisor, department_handler, "
                             "community_operator, grid_worker, data_officer, auditor, external_user, device, ops"),
    department: str = typer.Option(None, help="department scope, e.g. transport"),
    place: str = typer.Option(None, help="place scope (URN): the identity sees only this place and below"),
    service: bool = typer.Option(False, "--service", help="a service account (devices, other systems)"),
    password: bool = typer.Option(False, "--password", help="prompt for a password (for token logins)"),
    key: bool = typer.Option(True, help="issue an API key right away (printed once)"),
    store: str = typer.Option(None, help=STORE_HELP),
) -> None:
    """Create a user or service account (and print its first API key once)."""
    secret = getpass.getpass(f"password for {name}: ") if password else None

    async def go(rt: Any) -> dict[str, Any]:
        ctx = rt.context(CLI_ACTOR)
        payload = {"name": name, "role": role, "department": department, "place": place,
                   "kind": "service" if service else "user", "password": secret}
        made: dict[str, Any] = await rt.execute("user.add", payload, ctx)
        if key:
            made["key"] = (await rt.execute("user.key", {"name": name, "label": "cli"}, ctx))["key"]
        return made

    made = run(store, go)
    typer.echo(f"created {made['role']} {made['name']}")
    if "key" in made:
        typer.echo(f"API key (shown once, store it safely): {made['key']}")


@users_app.command("list")
def list_users(store: str = typer.Option(None, help=STORE_HELP)) -> None:
    """List identities with role and scope (never secrets)."""
    from citybrain.trust.identity import API_KEYS, IDENTITIES

    async def go(rt: Any) -> tuple[list[Any], list[Any]]:
        return await rt.store.list_docs(IDENTITIES, limit=10000), await rt.store.list_docs(API_KEYS, limit=100000)

    people, keys = run(store, go)
    live: dict[str, int] = {}
    for k in keys:
        if not k.data.get("revoked"):
            live[k.data["identity"]] = live.get(k.data["identity"], 0) + 1
    table = Table(title=f"{len(people)} identities")
    for col in ("name", "role", "kind", "department", "place", "keys", "disabled"):
        table.add_column(col)
    for p in people:
        d = p.data
        table.add_row(d["name"], d["role"], d.get("kind", "user"), d.get("department") or "", d.get("place") or "",
                      str(live.get(d["name"], 0)), "yes" if d.get("disabled") else "")
    console.print(table)


@users_app.command("key")
def new_key(
    name: str = typer.Argument(..., help="identity to issue a key to"),
    label: str = typer.Option("", help="what the key is for"),
    revoke: str = typer.Option(None, help="instead revoke the key with this id"),
    store: str = typer.Option(None, help=STORE_HELP),
) -> None:
    """Issue a new API key (printed once), or revoke one with --revoke <key id>."""

    async def go(rt: Any) -> Any:
        ctx = rt.context(CLI_ACTOR)
        if revoke:
            return await rt.execute("user.revoke_key", {"key_id": revoke}, ctx)
        return await rt.execute("user.key", {"name": name, "label": label}, ctx)

    out = run(store, go)
    typer.echo(f"revoked key {revoke}" if revoke else f"API key for {name} (shown once): {out['key']}")


@users_app.command("disable")
def disable(name: str = typer.Argument(...), store: str = typer.Option(None, help=STORE_HELP)) -> None:
    """Disable an identity: its keys and tokens stop working."""
    run(store, lambda rt: rt.execute("user.disable", {"name": name}, rt.context(CLI_ACTOR)))
    typer.echo(f"disabled {name}")
