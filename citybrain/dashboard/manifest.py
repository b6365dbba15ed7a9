"""The dashboard component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="dashboard",
    summary="city view, community view, case page; SSE relay of bus events",
    order=170,
    http="citybrain.dashboard:mount",
    http_order=70,
    reads="API, `cb.event.>`",
)
