"""Commands the NGSI-LD API adds to the city model: delete attributes, and write many entities at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, NotFound, ValidationError
from citybrain.model.commands import Directory, EntityInput, to_entity
from citybrain.model.types import PLACE_LEVELS
from citybrain.store import DeleteAttrs, DeleteEntity, Op, UpsertEntity

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


def register(rt: CityBrain) -> None:
    """Register the NGSI-LD commands on a runtime."""
    rt.commands.register("entity.delete_attrs", AttrsDelete, delete_attrs, "delete attributes of an entity")
    rt.commands.register("entity.write_many", EntitiesWrite, write_many,
                         "create, upsert, replace or update many entities in one commit")
    rt.commands.register("entity.delete_many", EntitiesDelete, delete_many, "delete many entities in one commit")
