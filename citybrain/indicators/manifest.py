"""The indicators component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="indicators",
    summary="indicator engine over the platform's own records; HTML/PDF reports",
    order=160,
    setup="citybrain.indicators:setup",
    provides=("indicators",),
    http="citybrain.indicators.api:mount",
    http_order=130,
    cli=(
        Command("evaluate", "citybrain.indicators.cli:evaluate_command", order=20,
                help="Evaluate the city's operation (four dimensions, standard indicators) and write the report."),
    ),
    reads="store",
)
