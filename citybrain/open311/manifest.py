"""The open311 component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="open311",
    summary="Open311 GeoReport v2: citizens' service requests become cases",
    order=75,
    http="citybrain.open311:mount",
    http_order=60,
    reads="HTTP",
    writes="`case.intake`, `case.file`, `case.dispatch`",
)
