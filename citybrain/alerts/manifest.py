"""The alerts component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="alerts",
    summary="grouped, de-duplicated SDM `Alert`s, ack/escalate/resolve/suppress, SSE",
    order=60,
    setup="citybrain.alerts:setup",
    needs=("rules", "situation"),
    provides=("alerts",),
    http="citybrain.alerts.api:mount",
    http_order=40,
    reads="signals",
    writes="`alert.*`, docs `alerts`",
)
