"""Commands the NGSI-LD API adds to the city model: delete attributes, write many entities at once, and add
attribute instances to an entity's history (the temporal representation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.clock import normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, NotFound, ValidationError
from citybrain.model.commands import Directory, EntityInput, check_attrs, to_entity
from citybrain.model.entity import ObservationRow
from citybrain.model.types import PLACE_LEVELS
from citybrain.store import DeleteAttrs, DeleteEntity, Op, SetAttrs, UpsertEntity, WriteObservations

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain


class AttrsDelete(msgspec.Struct, kw_only=True):
    """Remove attributes from an entity."""

    id: str
    names: list[str]


class EntitiesWrite(msgspec.Struct, kw_only=True):
    """Write many entities in one commit: create, upsert (merge), replace or update (must exist)."""

    entities: list[EntityInput]
    mode: str = "upsert"


class EntitiesDelete(msgspec.Struct, kw_only=True):
    """Delete many entities in one commit."""

    ids: list[str]


class TemporalWrite(msgspec.Struct, kw_only=True):
    """Add attribute instances (each with observedAt) to an entity's history, creating the entity if `create`."""

    id: str
    type: str | None = None  # needed when the entity is new; must match when it exists
    attrs: dict[str, list[dict[str, Any]]] = {}  # attribute name -> its instances
    create: bool = True


class ManyResult(msgspec.Struct, kw_only=True):
    """Which entities were written and why the others were not."""

    success: list[str] = []
    errors: list[dict[str, Any]] = []


async def delete_attrs(rt: CityBrain, cmd: AttrsDelete, ctx: Context) -> Outcome:
    """Delete attributes of an existing entity."""
    directory: Directory = rt.services["directory"]
    if cmd.id not in directory.types:
        raise NotFound(f"entity {cmd.id} not found", field="id")
    return Outcome(ops=[DeleteAttrs(cmd.id, cmd.names, rt.now())], result=cmd.id,
                   event={"id": cmd.id, "attrs": sorted(cmd.names), "deleted": True})


async def write_many(rt: CityBrain, cmd: EntitiesWrite, ctx: Context) -> Outcome:
    """Validate each entity; write the valid ones in one batch and report the rest."""
    if cmd.mode not in ("create", "upsert", "replace", "update"):
        raise ValidationError(f"mode: {cmd.mode!r} is not create, upsert, replace or update", field="mode")
    directory: Directory = rt.services["directory"]
    result = ManyResult()
    ops: list[Op] = []
    written: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for data in cmd.entities:
        try:
            if data.id in seen and cmd.mode == "create":
                raise ValidationError(f"entity {data.id} appears twice in the batch", field="id")
            exists = data.id in directory.types or data.id in seen
            if cmd.mode == "create" and exists:
                result.errors.append({"entityId": data.id, "kind": "AlreadyExists",
                                      "detail": f"entity {data.id} already exists"})
                continue
            if cmd.mode == "update" and not exists:
                result.errors.append({"entityId": data.id, "kind": "ResourceNotFound",
                                      "detail": f"entity {data.id} not found"})
                continue
            entity = to_entity(rt, data)
        except CityBrainError as exc:
            result.errors.append({"entityId": data.id, "kind": "BadRequestData", "detail": exc.detail})
            continue
        seen.add(entity.id)
        mode = "create" if cmd.mode == "create" else cmd.mode
        ops.append(UpsertEntity(entity, mode="upsert" if mode == "update" else mode))  # type: ignore[arg-type]
        written.append((entity.id, entity.type, entity.place))
        result.success.append(entity.id)

    async def after() -> None:
        for eid, etype, place in written:
            directory.add(eid, etype, place)

    return Outcome(ops=ops, result=result, after=after,
                   event={"ids": result.success, "mode": cmd.mode, "types": sorted({t for _, t, _ in written})})


async def delete_many(rt: CityBrain, cmd: EntitiesDelete, ctx: Context) -> Outcome:
    """Delete the entities that exist; report the missing ones."""
    directory: Directory = rt.services["directory"]
    result = ManyResult()
    ops: list[Op] = []
    for eid in dict.fromkeys(cmd.ids):
        if eid not in directory.types:
            result.errors.append({"entityId": eid, "kind": "ResourceNotFound", "detail": f"entity {eid} not found"})
        elif directory.types[eid] in PLACE_LEVELS and rt.services["places"].children.get(eid):
            result.errors.append({"entityId": eid, "kind": "BadRequestData",
                                  "detail": f"place {eid} still has places inside it"})
        else:
            ops.append(DeleteEntity(eid))
            result.success.append(eid)

    async def after() -> None:
        for eid in result.success:
            directory.remove(eid)

    return Outcome(ops=ops, result=result, after=after, event={"ids": result.success, "deleted": True})


def _instances(cmd: TemporalWrite) -> tuple[list[ObservationRow], dict[str, dict[str, Any]]]:
    """Validate the instances; return their history rows and the latest instance of each attribute."""
    rows: list[ObservationRow] = []
    latest: dict[str, dict[str, Any]] = {}
    for name, instances in cmd.attrs.items():
        if not instances:
            raise ValidationError(f"{name}: no attribute instances", field=name)
        for i, raw in enumerate(instances):
            attr = check_attrs({name: raw})[name]
            if attr.get("observedAt") is None:
                raise ValidationError(f"{name}[{i}]: an attribute instance needs observedAt", field=name)
            attr["observedAt"] = normalise_time(attr["observedAt"], f"{name}[{i}].observedAt")
            unit = attr.get("unitCode")
            rows.append(ObservationRow(cmd.id, name, attr["observedAt"],
                                       attr.get("value", attr.get("object", attr.get("languageMap"))),
                                       unit if isinstance(unit, str) else None))
            if name not in latest or attr["observedAt"] >= latest[name]["observedAt"]:
                latest[name] = attr
    return rows, latest


async def write_temporal(rt: CityBrain, cmd: TemporalWrite, ctx: Context) -> Outcome:
    """Record every instance in history (idempotent per attribute and observedAt). The current state of an
    attribute becomes its newest instance unless the entity already holds a newer value; a new entity is
    created from the newest instances."""
    directory: Directory = rt.services["directory"]
    known = directory.types.get(cmd.id)
    rows, latest = _instances(cmd)
    ops: list[Op] = []
    after = None
    if known is None:
        if not cmd.create:
            raise NotFound(f"entity {cmd.id} not found", field="id")
        if not cmd.type:
            raise ValidationError("type: a new entity needs a type", field="type")
        entity = to_entity(rt, EntityInput(id=cmd.id, type=cmd.type, attrs=latest))
        ops.append(UpsertEntity(entity, mode="create"))

        async def after() -> None:
            directory.add(entity.id, entity.type, entity.place)
            if entity.type in PLACE_LEVELS:
                rt.services["places"].add(entity)
    else:
        if cmd.type is not None and cmd.type != known:
            raise ValidationError(f"type: entity {cmd.id} is a {known}, not a {cmd.type}", field="type")
        current = await rt.store.get_entity(cmd.id)
        if current is None:
            raise NotFound(f"entity {cmd.id} not found", field="id")
        newer = {n: a for n, a in latest.items()
                 if n not in current.attrs or (current.attrs[n].get("observedAt") or "") <= a["observedAt"]}
        if newer:
            ops.append(SetAttrs(cmd.id, newer, rt.now()))
    if rows:
        ops.append(WriteObservations(rows))
    return Outcome(ops=ops, result={"created": known is None, "instances": len(rows)}, after=after,
                   event={"id": cmd.id, "type": cmd.type or known, "attrs": sorted(latest),
                          "instances": len(rows), "created": known is None})


def register(rt: CityBrain) -> None:
    """Register the NGSI-LD commands on a runtime."""
    rt.commands.register("entity.delete_attrs", AttrsDelete, delete_attrs, "delete attributes of an entity")
    rt.commands.register("entity.write_many", EntitiesWrite, write_many,
                         "create, upsert, replace or update many entities in one commit")
    rt.commands.register("entity.delete_many", EntitiesDelete, delete_many, "delete many entities in one commit")
    rt.commands.register("entity.temporal_write", TemporalWrite, write_temporal,
                         "add attribute instances to an entity's history, creating the entity if it is new")
