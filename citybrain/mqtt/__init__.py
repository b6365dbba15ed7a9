"""MQTT device ingest: FIWARE IoT Agent JSON topics from any broker into the observation ingest path."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


async def setup(rt: CityBrain) -> None:
    """Load provisioned devices; start the MQTT client when settings.mqtt names a broker."""
    from citybrain.mqtt.devices import DeviceRegistry

    registry = DeviceRegistry(rt)
    await registry.load()
    rt.ports.devices = registry
    if rt.settings.mqtt:
        from citybrain.mqtt.client import DeviceIngest

        ingest = DeviceIngest(rt, rt.settings.mqtt, registry)
        rt.ports.mqtt = ingest
        await ingest.start()
