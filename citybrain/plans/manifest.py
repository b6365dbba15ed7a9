"""The plans component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="plans",
    summary="YAML emergency plans: triggers propose, a person confirms, the city switches in one step",
    order=150,
    setup="citybrain.plans:setup",
    needs=("model",),
    provides=("plans",),
    http="citybrain.plans.api:mount",
    http_order=110,
    reads="observations, alerts, risk",
    writes="`plan.*`, modes, rule overrides, cases, dispatch, federation",
)
