"""The ledger component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="ledger",
    summary="RFC 9162 Merkle log over the event history, C2SP signed checkpoints, proofs, verify",
    order=110,
    setup="citybrain.ledger.service:setup",
    provides=("ledger",),
    http="citybrain.ledger.api:mount",
    http_order=20,
    cli=(
        Command("ledger", "citybrain.ledger.cli:ledger_app", order=50,
                help="The tamper-evident ledger: verify, checkpoint, key."),
    ),
    reads="`events` table",
    writes="docs `ledger_*`",
)
