"""The ingest component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="ingest",
    summary="validate → store → publish observations; dead letters",
    order=20,
    setup="citybrain.ingest.observations:setup",
    needs=("model",),
    provides=("ingest",),
    reads="HTTP, MQTT, replay, federation",
    writes="`cb.obs`",
)
