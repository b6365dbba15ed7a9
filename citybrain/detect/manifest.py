"""The detect component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="detect",
    summary="streaming anomaly detector, one per numeric series (NAB standard 70.93); run by `rules`",
    order=45,
    cli=(
        Command("detect", "citybrain.detect.cli:detect_command", order=10,
                help="Run the production anomaly detector over NAB-style CSVs, for scoring with nab_score.py."),
    ),
    reads="`cb.obs`",
    writes="signals",
)
