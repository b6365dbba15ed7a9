"""Provisioned devices (FIWARE IoT Agent style): apikey + device id → entity, type, location, attribute map.

Devices are documents in the "mqtt_devices" collection; provisioning also creates (upserts) the device's
entity, so the ingest path knows the sensor. A measurement payload {object_id: value} becomes one
observation item with the mapped attribute names and types.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from citybrain.bus import Message
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import ValidationError
from citybrain.model.urn import check_id, make_urn
from citybrain.ports import Ports
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

COLLECTION = "mqtt_devices"
_KEY = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("Number", "Integer", "Float", "Text", "Boolean", "geo:point", "Json", "DateTime")
_AS_IS = ("Json", "DateTime")  # kinds convert() passes through unchanged
_TIME_KEYS = frozenset(("TimeInstant", "timestamp"))


class Mapping(msgspec.Struct, kw_only=True):
    """One measured attribute: the key the device sends, the attribute name and its type."""

    object_id: str
    name: str
    type: str = "Number"
    unit: str | None = None


class Device(msgspec.Struct, kw_only=True):
    """A provisioned device."""

    device_id: str
    apikey: str
    entity_type: str
    entity_id: str = ""
    location: list[float] | None = None  # lon, lat
    attributes: list[Mapping] = []
    place: str | None = None

    @property
    def key(self) -> str:
        """The document id: apikey/device_id."""
        return f"{self.apikey}/{self.device_id}"


def check_device(device: Device) -> Device:
    """Validate a device definition; fill in the entity id; raise ValidationError naming the field."""
    for field, value in (("device_id", device.device_id), ("apikey", device.apikey)):
        if not _KEY.match(value):
            raise ValidationError(f"{field}: {value!r} must be 1–128 of [A-Za-z0-9_-.:]", field=field)
    if not _NAME.match(device.entity_type):
        raise ValidationError(f"entity_type: {device.entity_type!r} is not a type name", field="entity_type")
    device.entity_id = device.entity_id or make_urn(device.entity_type, device.device_id)
    check_id(device.entity_id, "entity_id")
    if device.location is not None and (len(device.location) != 2 or not all(map(math.isfinite, device.location))):
        raise ValidationError("location: expected [lon, lat]", field="location")
    for m in device.attributes:
        if not _NAME.match(m.name):
            raise ValidationError(f"attributes: {m.name!r} is not an attribute name", field="attributes")
        if m.type not in KINDS:
            raise ValidationError(f"attributes: type {m.type!r} is not one of {', '.join(KINDS)}", field="attributes")
    return device


def convert(value: Any, kind: str, field: str) -> Any:
    """Convert a measured value to the mapped attribute type (IoT agents often send numbers as text)."""
    try:
        if kind in ("Number", "Float"):
            out = float(value) if not isinstance(value, bool) else None
            if out is None or not math.isfinite(out):
                raise ValueError
            return int(out) if isinstance(value, int) else out
        if kind == "Integer":
            return int(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "false", "0"):
                return str(value).lower() in ("true", "1")
            raise ValueError
        if kind == "Text":
            return str(value)
        if kind == "geo:point":
            lat, lon = (float(x) for x in str(value).split(","))
            return {"type": "Point", "coordinates": [lon, lat]}
    except (TypeError, ValueError):
        raise ValidationError(f"{field}: {value!r} is not a valid {kind}", field=field) from None
    return value


PROVISIONED = "cb.event.command.device.provision"


async def provision(rt: CityBrain, cmd: Device, ctx: Context) -> Outcome:
    """device.provision: check the device, upsert its entity (a follow-up command) and store the device.

    The event carries the device, so every process's registry takes its new mapping at once."""
    device = check_device(cmd)
    entity: dict[str, Any] = {"id": device.entity_id, "type": device.entity_type, "place": device.place,
                              "attrs": {"deviceId": {"type": "Property", "value": device.device_id}}}
    if device.location is not None:
        entity["location"] = {"type": "Point", "coordinates": list(device.location)}
    await rt.execute("entity.write", {"entity": entity, "mode": "upsert"}, ctx)
    data = msgspec.to_builtins(device)
    registry = rt.ports.find(Ports.devices)

    async def after() -> None:
        if isinstance(registry, DeviceRegistry):
            registry.put(device)

    return Outcome(ops=[PutDoc(COLLECTION, device.key, data)], result=data, event=data, after=after)


class DeviceRegistry:
    """Devices by apikey/device_id, kept in memory and stored as documents (a miss reads through to the store)."""

    miss_ttl = 2.0  # seconds a device not found in the store is taken as unknown without reading again

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.devices: dict[str, Device] = {}
        self._maps: dict[str, tuple[Device, dict[str, Mapping]]] = {}  # key → (device, object_id → mapping)
        self._misses: dict[str, float] = {}  # key → monotonic time of the store read that did not find it

    async def load(self) -> None:
        """Read every provisioned device from the store."""
        offset = 0
        while True:
            docs = await self.rt.store.list_docs(COLLECTION, limit=1000, offset=offset)
            for d in docs:
                dev = msgspec.convert(d.data, Device)
                self.devices[dev.key] = dev
            if len(docs) < 1000:
                return
            offset += 1000

    async def resolve(self, keys: Iterable[str]) -> None:
        """Read unknown devices (apikey/device_id) through to the store: another process may have provisioned
        them. A key not found is not read again for `miss_ttl` seconds (traffic of unprovisioned devices)."""
        now = time.monotonic()
        for key in keys:
            if key in self.devices or now - self._misses.get(key, -math.inf) < self.miss_ttl:
                continue
            doc = await self.rt.store.get_doc(COLLECTION, key)
            if doc is None:
                if len(self._misses) >= 10_000:
                    self._misses.clear()
                self._misses[key] = now
                continue
            dev = msgspec.convert(doc.data, Device)
            self.devices[dev.key] = dev
            self._misses.pop(key, None)

    def find(self, apikey: str, device_id: str) -> Device | None:
        """Return a device, or None when it is not provisioned."""
        return self.devices.get(f"{apikey}/{device_id}")

    async def add(self, device: Device, ctx: Context | None = None) -> Device:
        """Provision (or re-provision) a device and upsert its entity: the command `device.provision`."""
        result: dict[str, Any] = await self.rt.execute("device.provision", msgspec.to_builtins(device),
                                                       ctx or self.rt.context("devices"))
        return msgspec.convert(result, Device)

    def put(self, device: Device) -> None:
        """Take a provisioned device into this process's registry (its mapping replaces the old one)."""
        self.devices[device.key] = device
        self._misses.pop(device.key, None)

    async def on_provisioned(self, msg: Message) -> None:
        """Follow `device.provision` run on any process (or by `citybrain devices`): the new mapping at once."""
        data = orjson.loads(msg.data).get("data")
        if isinstance(data, dict):
            try:
                self.put(msgspec.convert(data, Device))
            except (msgspec.ValidationError, TypeError):
                pass

    def observation(self, device: Device, payload: dict[str, Any], observed_at: str) -> dict[str, Any]:
        """Turn a measurement payload into one ingest item (unmapped keys keep their names)."""
        by_key = self._maps.get(device.key)
        if by_key is None or by_key[0] is not device:
            by_key = (device, {m.object_id: m for m in device.attributes})
            self._maps[device.key] = by_key
        mapped = by_key[1]
        values: dict[str, Any] = {}
        for key, value in payload.items():
            if key in _TIME_KEYS:
                continue
            m = mapped.get(key)
            if m is not None:  # the mapped name was checked when the device was provisioned
                values[m.name] = convert(value, m.type, key) if m.type not in _AS_IS else value
            elif _NAME.match(key):
                values[key] = value
            else:
                raise ValidationError(f"{key}: not a valid attribute name", field=key)
        if not values:
            raise ValidationError("payload: no measurements", field="payload")
        return {"entity": device.entity_id, "observedAt": observed_at, "values": values}
