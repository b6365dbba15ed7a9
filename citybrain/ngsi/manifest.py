"""The ngsi component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="ngsi",
    summary="NGSI-LD API view onto the same store; subscriptions; temporal; tenants",
    order=80,
    setup="citybrain.ngsi:setup",
    provides=("ngsi_tenants", "ngsi_notifier"),
    http="citybrain.ngsi:mount",
    http_order=80,
    reads="store, `cb.obs`, command events",
    writes="notifications",
)
