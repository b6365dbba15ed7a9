"""`citybrain ledger …`: verify the whole log against its signed checkpoints, sign a checkpoint, show the key.

The CLI opens the node's store directly: whoever can open the store file (or database) and the key
file is an administrator of the node, so protect both with file permissions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from citybrain.config import Settings
from citybrain.ledger.log import verify_store
from citybrain.ledger.note import Signer, Verifier

ledger_app = typer.Typer(help="The tamper-evident ledger: verify, checkpoint, key.", no_args_is_help=True)

STORE_HELP = "SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]"


def _settings(store: str | None, key_file: str | None) -> Settings:
    return Settings.from_env(store=store, ledger_key=key_file)


def _verifier(settings: Settings, vkey: str | None) -> Verifier:
    from citybrain.ledger.service import key_path

    if vkey:
        return Verifier.from_vkey(vkey)
    path = key_path(settings)
    if path is None or not Path(path).exists():
        raise typer.BadParameter("no ledger key file found; pass --vkey with the log's public key")
    return Signer.from_skey(Path(path).read_text().strip()).verifier()


@ledger_app.command()
def verify(
    store: str = typer.Option(None, help=STORE_HELP),
    vkey: str = typer.Option(None, help="the log's public key (default: derived from the node's key file)"),
    key_file: str = typer.Option(None, "--key-file", help="ledger key file [env CITYBRAIN_LEDGER_KEY]"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Re-check every stored entry against every signed checkpoint; exit 1 naming the first bad entry."""
    from citybrain.store import open_store

    settings = _settings(store, key_file)
    verifier = _verifier(settings, vkey)

    async def main() -> object:
        async with open_store(settings.store) as st:
            return await verify_store(st, verifier)

    report = asyncio.run(main())
    from citybrain.ledger.verify import VerifyReport

    assert isinstance(report, VerifyReport)
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "entries": report.entries, "verified_size": report.verified_size,
                               "checkpoints": report.checkpoints, "first_bad": report.first_bad,
                               "exact": report.exact, "reason": report.reason}))
    else:
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@ledger_app.command()
def checkpoint(
    store: str = typer.Option(None, help=STORE_HELP),
    key_file: str = typer.Option(None, "--key-file", help="ledger key file [env CITYBRAIN_LEDGER_KEY]"),
) -> None:
    """Append every recorded event not yet in the log and print a freshly signed checkpoint.

    Run it when the node is stopped (a running node appends and signs by itself)."""
    from citybrain.ledger.service import open_ledger
    from citybrain.runtime import CityBrain

    async def main() -> str:
        async with CityBrain(_settings(store, key_file), components=[]) as rt:
            return await (await open_ledger(rt)).flush()

    typer.echo(asyncio.run(main()), nl=False)


@ledger_app.command()
def key(
    store: str = typer.Option(None, help=STORE_HELP),
    key_file: str = typer.Option(None, "--key-file", help="ledger key file [env CITYBRAIN_LEDGER_KEY]"),
) -> None:
    """Print the log's public verifier key (give it to auditors and the city node)."""
    typer.echo(_verifier(_settings(store, key_file), None).vkey())
