"""MQTT device ingest: FIWARE IoT Agent JSON topics from any broker into the observation ingest path."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


async def setup(rt: CityBrain) -> None:
    """Load provisioned devices; start the MQTT client when settings.mqtt names a broker."""
    from citybrain.mqtt.devices import PROVISIONED, Device, DeviceRegistry, provision

    registry = DeviceRegistry(rt)
    rt.commands.register("device.provision", Device, provision,
                         "provision (or re-provision) an MQTT device and upsert its entity")
    # subscribe before loading: a device provisioned by another process meanwhile is not missed
    await rt.bus.subscribe(PROVISIONED, registry.on_provisioned)
    await registry.load()
    rt.ports.devices = registry
    if rt.settings.mqtt:
        from citybrain.mqtt.client import DeviceIngest

        ingest = DeviceIngest(rt, rt.settings.mqtt, registry)
        rt.ports.mqtt = ingest
        await ingest.start()
