"""The dispatch component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="dispatch",
    summary="road-graph dispatch of resources to incidents (exact assignment)",
    order=140,
    setup="citybrain.dispatch:setup",
    provides=("dispatch",),
    http="citybrain.dispatch.api:mount",
    http_order=120,
    cli=(
        Command("resources", "citybrain.dispatch.cli:resources_app", order=70,
                help="Resources (teams, vehicles, shelters, supplies): import, list."),
    ),
    reads="incidents, resources",
    writes="`command.incident.*`, `command.dispatch.*`",
)
