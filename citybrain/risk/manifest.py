"""The risk component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="risk",
    summary="hazard × exposure × vulnerability per cell and community, with factors",
    order=50,
    setup="citybrain.risk:setup",
    needs=("rules",),
    provides=("risk",),
    reads="signals, places",
    writes="`risk.changed`",
)
