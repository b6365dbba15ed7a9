"""The mqtt component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="mqtt",
    summary="FIWARE IoT Agent JSON topics → ingest (QoS 1 acked after commit, per batch)",
    order=90,
    setup="citybrain.mqtt:setup",
    provides=("devices", "mqtt"),
    cli=(
        Command("devices", "citybrain.mqtt.cli:devices_app", order=40,
                help="Provision MQTT devices (FIWARE IoT Agent JSON topics)."),
    ),
    reads="broker",
    writes="ingest",
)
