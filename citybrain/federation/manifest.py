"""The federation component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="federation",
    summary="city ↔ community messages over JetStream: durable outbox, ordered idempotent apply, receipts",
    order=120,
    setup="citybrain.federation:setup",
    provides=("federation",),
    http="citybrain.federation.api:mount",
    http_order=90,
    cli=(
        Command("nodes", "citybrain.federation.cli:federation_app", order=80, merged=True,
                help="List this node and its linked nodes with link status and backlog up / down."),
        Command("outbox", "citybrain.federation.cli:federation_app", order=90, merged=True,
                help="Show what is waiting to go up or down, per channel, oldest first."),
        Command("directive", "citybrain.federation.cli:federation_app", order=100, merged=True,
                help="Directives down to communities, with read and done receipts."),
    ),
    reads="NATS",
    writes="docs `outbox`/`inbox`",
)
