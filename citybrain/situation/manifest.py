"""The situation component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="situation",
    summary="per-place latest values, rolling windows, freshness, coverage",
    order=30,
    setup="citybrain.situation:setup",
    provides=("situation", "pipeline"),
    http="citybrain.situation.api:mount",
    http_order=30,
    reads="`cb.obs`",
    writes="`cb.situation.<level>`",
)
