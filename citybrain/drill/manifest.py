"""The drill component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="drill",
    summary="sandboxed drills: a plan run against recorded data on a fake clock",
    order=155,
    cli=(
        Command("drill", "citybrain.drill.cli:drill_command", order=30,
                help="Run a plan against the demo city's recorded scenario in a sandbox; write timeline, tasks, resources."),
    ),
    reads="plans, demo city, recorded series",
    writes="a report (nothing on the live node)",
)
