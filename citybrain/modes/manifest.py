"""The modes component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="modes",
    summary="operating mode per area: normal → watch → emergency IV–I → recovery",
    order=130,
    setup="citybrain.modes:setup",
    provides=("modes",),
    http="citybrain.modes.api:mount",
    http_order=100,
    reads="commands (plans, operators)",
    writes="`mode.*`, docs `modes`",
)
