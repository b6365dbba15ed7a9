"""`citybrain devices add|list|import`: provision MQTT devices (IoT Agent JSON convention)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import typer

from citybrain.config import Settings
from citybrain.errors import CityBrainError
from citybrain.mqtt.devices import Device, DeviceRegistry, Mapping
from citybrain.ports import Ports

devices_app = typer.Typer(help="Provision MQTT devices (FIWARE IoT Agent JSON topics).", no_args_is_help=True)
T = TypeVar("T")
PROVISIONING = ["citybrain.model.commands", "citybrain.mqtt"]  # components `citybrain devices` starts
STORE = typer.Option(None, help="SQLite file path or postgresql:// URL [env CITYBRAIN_STORE]")


def _run(store: str | None, work: Callable[[DeviceRegistry], Awaitable[T]]) -> T:
    from citybrain.runtime import CityBrain

    async def main() -> T:
        settings = Settings.from_env(store=store)
        settings.mqtt = ""  # provisioning never connects to the broker
        # only what provisioning needs: no pipeline, ledger or sweeps of its own on the node's store
        async with CityBrain(settings, components=PROVISIONING) as rt:
            return await work(rt.ports.own(Ports.devices, DeviceRegistry))

    try:
        return asyncio.run(main())
    except CityBrainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None


def parse_mapping(text: str) -> Mapping:
    """Parse object_id=name[:type[:unit]] (e.g. t=temperature:Number:CEL)."""
    key, sep, rest = text.partition("=")
    if not sep or not key or not rest:
        raise typer.BadParameter(f"{text!r}: expected object_id=name[:type[:unit]]")
    name, _, kind = rest.partition(":")
    kind, _, unit = kind.partition(":")
    return Mapping(object_id=key, name=name, type=kind or "Number", unit=unit or None)


@devices_app.command("add")
def add(
    device_id: str = typer.Argument(..., help="the device id in MQTT topics"),
    entity_type: str = typer.Option(..., "--type", help="entity type, e.g. AirQualityObserved"),
    apikey: str = typer.Option(..., help="the apikey in MQTT topics"),
    entity_id: str = typer.Option("", help="entity URN (default urn:ngsi-ld:<type>:<device_id>)"),
    lon: float = typer.Option(None, help="longitude of the device"),
    lat: float = typer.Option(None, help="latitude of the device"),
    attr: list[str] = typer.Option([], "--attr", help="object_id=name[:type[:unit]], repeatable"),
    store: str = STORE,
) -> None:
    """Provision one device and create its entity."""
    location = [lon, lat] if lon is not None and lat is not None else None
    device = Device(device_id=device_id, apikey=apikey, entity_type=entity_type, entity_id=entity_id,
                    location=location, attributes=[parse_mapping(a) for a in attr])
    added = _run(store, lambda reg: reg.add(device))
    typer.echo(f"provisioned {added.key} → {added.entity_id}")


@devices_app.command("list")
def list_devices(store: str = STORE, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List provisioned devices."""

    async def work(reg: DeviceRegistry) -> list[Device]:
        return sorted(reg.devices.values(), key=lambda d: d.key)

    devices = _run(store, work)
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(devices), ensure_ascii=False, indent=2))
        return
    for d in devices:
        attrs = ", ".join(f"{m.object_id}={m.name}:{m.type}" for m in d.attributes)
        typer.echo(f"{d.key}\t{d.entity_id}\t{d.entity_type}\t{attrs}")


@devices_app.command("import")
def import_devices(
    file: Path = typer.Argument(..., exists=True, readable=True, help="JSON list of devices (or {devices: [...]})"),
    store: str = STORE,
) -> None:
    """Provision devices from a JSON file (IoT Agent provisioning format is accepted too)."""
    raw: Any = json.loads(file.read_text(encoding="utf-8"))
    items = raw.get("devices", []) if isinstance(raw, dict) else raw
    devices = [from_json(item) for item in items]

    async def work(reg: DeviceRegistry) -> int:
        for d in devices:
            await reg.add(d)
        return len(devices)

    typer.echo(f"provisioned {_run(store, work)} devices")


def from_json(item: dict[str, Any]) -> Device:
    """Read a device in citybrain's form or in the FIWARE IoT Agent provisioning form."""
    if "entity_name" in item or "object_id" in str(item.get("attributes", "")):
        attrs = [Mapping(object_id=a.get("object_id", a["name"]), name=a["name"],
                         type=a.get("type", "Number"), unit=a.get("unit"))
                 for a in item.get("attributes", [])]
        loc = item.get("location")
        return Device(device_id=item["device_id"], apikey=item.get("apikey", ""), entity_type=item["entity_type"],
                      entity_id=item.get("entity_name", ""), location=loc, attributes=attrs)
    return msgspec.convert(item, Device)
