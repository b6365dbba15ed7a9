"""The model component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="model",
    summary="entity commands, place index, entity directory",
    order=10,
    setup="citybrain.model.commands:setup",
    provides=("places", "directory"),
    reads="store",
    writes="`command.entity.*`",
)
