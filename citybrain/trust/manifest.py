"""The trust component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="trust",
    summary="identities, roles, deny-by-default middleware, catalog, grants, data exports",
    order=100,
    setup="citybrain.trust:setup",
    provides=("auth", "identities", "catalog"),
    http="citybrain.trust.api:mount",
    http_order=10,
    cli=(
        Command("users", "citybrain.trust.cli:users_app", order=60,
                help="Users and service accounts: add, list, API keys."),
    ),
    reads="every request",
    writes="`data.access` events",
)
