"""Commands the NGSI-LD API adds to the city model: delete attributes, write many entities at once, add
attribute instances to an entity's history (the temporal representation), and create, change or delete
subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from citybrain.clock import normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import CityBrainError, NotFound, ValidationError
from citybrain.model.commands import (
    Directory,
    EntityInput,
    check_attrs,
    current_places,
    places_written,
    to_entity,
)
from citybrain.model.entity import Entity, ObservationRow
from citybrain.model.types import PLACE_LEVELS
from citybrain.ngsi.errors import BadRequestData
from citybrain.store import (
    DeleteAttrs,
    DeleteDoc,
    DeleteEntity,
    Op,
    PutDoc,
    SetAttrs,
    UpsertEntity,
    WriteObservations,
)

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
    directory: Directory = rt.ports.directory
    if await directory.type_of(cmd.id) is None:
        raise NotFound(f"entity {cmd.id} not found", field="id")

    async def after() -> None:
        if cmd.id in rt.ports.places:  # a place lost an attribute (its polygon?): reload it here now
            directory.ran_here(ctx.id)
            await directory.refresh_places([cmd.id])

    return Outcome(ops=[DeleteAttrs(cmd.id, cmd.names, rt.now())], result=cmd.id, after=after,
                   event={"id": cmd.id, "attrs": sorted(cmd.names), "deleted": True})


async def write_many(rt: CityBrain, cmd: EntitiesWrite, ctx: Context) -> Outcome:
    """Validate each entity; write the valid ones in one batch and report the rest."""
    if cmd.mode not in ("create", "upsert", "replace", "update"):
        raise ValidationError(f"mode: {cmd.mode!r} is not create, upsert, replace or update", field="mode")
    directory: Directory = rt.ports.directory
    if cmd.mode in ("create", "update"):
        # which ids exist decides each entity's outcome: ask the store (one read), as another process may have
        # created or deleted any of them a moment ago
        existing = await directory.existing(data.id for data in cmd.entities)
    else:
        await directory.resolve(data.id for data in cmd.entities)
        existing = set()
    await directory.load_places(data.place for data in cmd.entities)
    result = ManyResult()
    ops: list[Op] = []
    written: list[tuple[str, str, str | None]] = []
    placed: list[Entity] = []
    seen: set[str] = set()
    for data in cmd.entities:
        try:
            if data.id in seen and cmd.mode == "create":
                raise ValidationError(f"entity {data.id} appears twice in the batch", field="id")
            exists = data.id in existing or data.id in seen
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
        if entity.type in PLACE_LEVELS:
            placed.append(entity)
        result.success.append(entity.id)

    async def after() -> None:
        directory.ran_here(ctx.id)
        for eid, etype, place in written:
            directory.add(eid, etype, place)
        for entity in placed:
            rt.ports.places.add(entity)

    return Outcome(ops=ops, result=result, after=after,
                   event={"ids": result.success, "mode": cmd.mode, "types": sorted({t for _, t, _ in written})})


async def delete_many(rt: CityBrain, cmd: EntitiesDelete, ctx: Context) -> Outcome:
    """Delete the entities that exist; report the missing ones."""
    directory: Directory = rt.ports.directory
    existing = await directory.existing(cmd.ids)
    result = ManyResult()
    ops: list[Op] = []
    for eid in dict.fromkeys(cmd.ids):
        if eid not in existing:
            result.errors.append({"entityId": eid, "kind": "ResourceNotFound", "detail": f"entity {eid} not found"})
        elif directory.types[eid] in PLACE_LEVELS and rt.ports.places.children.get(eid):
            result.errors.append({"entityId": eid, "kind": "BadRequestData",
                                  "detail": f"place {eid} still has places inside it"})
        else:
            ops.append(DeleteEntity(eid))
            result.success.append(eid)

    async def after() -> None:
        directory.ran_here(ctx.id)
        for eid in result.success:
            directory.remove(eid)
            rt.ports.places.remove(eid)

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
    directory: Directory = rt.ports.directory
    known = await directory.type_of(cmd.id)
    rows, latest = _instances(cmd)
    ops: list[Op] = []
    after = None
    new_place: str | None = None  # where a new entity is (for the other processes' directories)
    if known is None:
        if not cmd.create:
            raise NotFound(f"entity {cmd.id} not found", field="id")
        if not cmd.type:
            raise ValidationError("type: a new entity needs a type", field="type")
        entity = to_entity(rt, EntityInput(id=cmd.id, type=cmd.type, attrs=latest))
        ops.append(UpsertEntity(entity, mode="create"))
        new_place = entity.place

        async def after() -> None:
            directory.ran_here(ctx.id)
            directory.add(entity.id, entity.type, entity.place)
            if entity.type in PLACE_LEVELS:
                rt.ports.places.add(entity)
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
                          "instances": len(rows), "created": known is None,
                          "place": new_place})


class SubscriptionWrite(msgspec.Struct, kw_only=True):
    """Create an NGSI-LD subscription: its members as received, its @context, and its creator's area."""

    subscription: dict[str, Any]
    context: Any = None
    area: str | None = None  # the place its creator is confined to: only entities there are notified


class SubscriptionChange(msgspec.Struct, kw_only=True):
    """Change members of an NGSI-LD subscription (an @context given replaces the stored one)."""

    id: str
    members: dict[str, Any]
    context: Any = None


class SubscriptionRef(msgspec.Struct, kw_only=True):
    """Names one NGSI-LD subscription."""

    id: str


def _compile(sub: dict[str, Any], context: Any, area: str | None, revision: str) -> Any:
    """Compile a subscription; a bad member is a ValidationError naming it."""
    from citybrain.ngsi.subscriptions import compile_watch

    try:
        return compile_watch(sub, context, area, revision)
    except BadRequestData as exc:
        raise ValidationError(exc.detail, field="subscription") from None


async def _check_endpoint(rt: CityBrain, uri: str) -> None:
    """Refuse an endpoint the egress policy refuses (link-local, metadata, private, loopback; egress.py)."""
    from citybrain.ngsi.egress import EgressRefused

    try:
        await rt.ports.ngsi_notifier.egress.check_uri(uri)
    except EgressRefused as exc:
        raise ValidationError(f"notification.endpoint.uri: {exc}", field="notification.endpoint.uri") from None


async def create_subscription(rt: CityBrain, cmd: SubscriptionWrite, ctx: Context) -> Outcome:
    """Store a new subscription (AlreadyExists from the store if its id is taken) and make it live here."""
    from citybrain.ngsi.notify import STATUS
    from citybrain.ngsi.subscriptions import COLLECTION

    sub = dict(cmd.subscription)
    sub_id = sub.get("id")
    if not isinstance(sub_id, str):
        raise ValidationError("subscription.id: a subscription needs an id", field="subscription.id")
    watch = _compile(sub, cmd.context, cmd.area, ctx.id)
    await _check_endpoint(rt, watch.uri)
    doc = {"subscription": sub, "context": cmd.context, "area": cmd.area, "revision": ctx.id}

    async def after() -> None:
        rt.ports.ngsi_notifier.put(watch)

    # a status left by an earlier subscription of the same id (written late by a process) starts over
    return Outcome(ops=[PutDoc(COLLECTION, sub_id, doc, expect_version=0), DeleteDoc(STATUS, sub_id)],
                   result=sub_id, after=after, event={"id": sub_id, "members": sorted(sub), "area": cmd.area})


async def update_subscription(rt: CityBrain, cmd: SubscriptionChange, ctx: Context) -> Outcome:
    """Merge members into a stored subscription (Conflict if another process changed it meanwhile)."""
    from citybrain.ngsi.subscriptions import COLLECTION

    found = await rt.store.get_doc(COLLECTION, cmd.id)
    if found is None:
        raise NotFound(f"subscription {cmd.id} not found", field="id")
    if "id" in cmd.members and cmd.members["id"] != cmd.id:
        raise ValidationError("id cannot be changed", field="id")
    sub = {**found.data["subscription"], **cmd.members}
    context = cmd.context if cmd.context is not None else found.data.get("context")
    area = found.data.get("area")
    watch = _compile(sub, context, area, ctx.id)
    await _check_endpoint(rt, watch.uri)
    doc = {"subscription": sub, "context": context, "area": area, "revision": ctx.id}

    async def after() -> None:
        rt.ports.ngsi_notifier.put(watch)

    return Outcome(ops=[PutDoc(COLLECTION, cmd.id, doc, expect_version=found.version)], result=cmd.id,
                   after=after, event={"id": cmd.id, "members": sorted(cmd.members)})


async def delete_subscription(rt: CityBrain, cmd: SubscriptionRef, ctx: Context) -> Outcome:
    """Delete a subscription and its status; it stops here now and on the other processes on the event."""
    from citybrain.ngsi.notify import STATUS
    from citybrain.ngsi.subscriptions import COLLECTION

    if await rt.store.get_doc(COLLECTION, cmd.id) is None:
        raise NotFound(f"subscription {cmd.id} not found", field="id")

    async def after() -> None:
        rt.ports.ngsi_notifier.remove(cmd.id)

    return Outcome(ops=[DeleteDoc(COLLECTION, cmd.id), DeleteDoc(STATUS, cmd.id)], result=cmd.id, after=after,
                   event={"id": cmd.id})


async def _locate_many(rt: CityBrain, cmd: EntitiesWrite) -> list[str | None]:
    return await places_written(rt, cmd.entities)


async def _locate_ids(rt: CityBrain, cmd: EntitiesDelete) -> list[str | None]:
    return await current_places(rt, cmd.ids)


async def _locate_one(rt: CityBrain, cmd: AttrsDelete | TemporalWrite) -> list[str | None]:
    found = await current_places(rt, [cmd.id])
    return found or [None]  # a temporal write may create an entity: nobody placed it, refused when confined


def register(rt: CityBrain) -> None:
    """Register the NGSI-LD commands on a runtime (each locates the entities it touches: see CommandSpec.place)."""
    rt.commands.register("entity.delete_attrs", AttrsDelete, delete_attrs, "delete attributes of an entity",
                         place=_locate_one)
    rt.commands.register("entity.write_many", EntitiesWrite, write_many,
                         "create, upsert, replace or update many entities in one commit", place=_locate_many)
    rt.commands.register("entity.delete_many", EntitiesDelete, delete_many, "delete many entities in one commit",
                         place=_locate_ids)
    rt.commands.register("entity.temporal_write", TemporalWrite, write_temporal,
                         "add attribute instances to an entity's history, creating the entity if it is new",
                         place=_locate_one)
    rt.commands.register("ngsi.subscription.create", SubscriptionWrite, create_subscription,
                         "create an NGSI-LD subscription")
    rt.commands.register("ngsi.subscription.update", SubscriptionChange, update_subscription,
                         "change members of an NGSI-LD subscription")
    rt.commands.register("ngsi.subscription.delete", SubscriptionRef, delete_subscription,
                         "delete an NGSI-LD subscription")
