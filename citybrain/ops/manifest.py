"""The ops component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="ops",
    summary="`/metrics`, JSON logs, admission control (429/503)",
    order=180,
    http="citybrain.ops:mount",
    http_order=140,
    reads="services",
)
