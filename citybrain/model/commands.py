"""Commands that change the city model: create, update and delete entities (places included)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import NotFound, ValidationError
from citybrain.model.directory import ENTITY_EVENTS, Directory
from citybrain.model.entity import Entity
from citybrain.model.places import PlaceIndex
from citybrain.model.types import PLACE_LEVELS
from citybrain.model.urn import check_id, is_urn
from citybrain.store import DeleteEntity, SetAttrs, UpsertEntity

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

_NAME = re.compile(r"^[A-Za-z_@][A-Za-z0-9_:/#.\-]*$")
ATTR_TYPES = ("Property", "Relationship", "GeoProperty", "LanguageProperty", "ListProperty", "VocabProperty",
              "JsonProperty", "ListRelationship")


class EntityInput(msgspec.Struct, kw_only=True):
    """An entity as commands receive it: NGSI-LD style attributes plus its place."""

    id: str
    type: str
    attrs: dict[str, Any] = {}
    place: str | None = None
    location: dict[str, Any] | None = None
    scope: str | None = None


class EntityWrite(msgspec.Struct, kw_only=True):
    """Create, upsert or replace one entity."""

    entity: EntityInput
    mode: Literal["create", "upsert", "replace"] = "create"


class AttrsWrite(msgspec.Struct, kw_only=True):
    """Merge attributes into an entity (merge "patch"/"patch_existing": attrs are patches, see store.SetAttrs)."""

    id: str
    attrs: dict[str, Any]
    merge: Literal["", "patch", "patch_existing"] = ""


class EntityRef(msgspec.Struct, kw_only=True):
    """Names one entity."""

    id: str


def check_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Validate NGSI-LD attribute objects; raise ValidationError naming the attribute."""
    out: dict[str, Any] = {}
    for name, attr in attrs.items():
        # "<name> <datasetId>" is the key of a non-default instance of a multi-attribute (NGSI-LD datasetId)
        base, _, dataset = name.partition(" ") if isinstance(name, str) else ("", "", "")
        if not base or not _NAME.match(base) or base in ("id", "type", "@context") or (dataset and not is_urn(dataset)):
            raise ValidationError(f"attrs: {name!r} is not a valid attribute name", field=str(name))
        if not isinstance(attr, dict):
            attr = {"type": "Property", "value": attr}
        kind = attr.get("type", "Property")
        if kind not in ATTR_TYPES:
            raise ValidationError(f"{name}: unknown attribute type {kind!r}", field=name)
        if kind in ("Relationship", "ListRelationship"):
            if "object" not in attr:
                raise ValidationError(f"{name}: a Relationship needs an 'object'", field=name)
        elif kind == "LanguageProperty":
            if not isinstance(attr.get("languageMap"), dict):
                raise ValidationError(f"{name}: a LanguageProperty needs a 'languageMap' object", field=name)
        elif "value" not in attr or attr["value"] is None:
            raise ValidationError(f"{name}: a {kind} needs a non-null 'value'", field=name)
        if kind == "GeoProperty":
            check_geometry(attr["value"], name)
        out[name] = {"type": kind, **{k: v for k, v in attr.items() if k != "type"}}
    return out


def check_patches(attrs: dict[str, Any]) -> dict[str, Any]:
    """Validate attribute patches (the store merges them and checks the result); raise ValidationError."""
    for name, patch in attrs.items():
        if not isinstance(patch, dict) or patch.get("type", "Property") not in ATTR_TYPES:
            raise ValidationError(f"{name}: a patch is an attribute object of a known type", field=str(name))
        check_attrs({name: {"type": "Property", "value": True}})  # the same rules for the name
        if patch.get("type") == "GeoProperty" and patch.get("value") is not None:
            check_geometry(patch["value"], name)
    return attrs


def check_geometry(geo: Any, field: str) -> None:
    """Raise ValidationError unless `geo` is a valid GeoJSON geometry."""
    if not isinstance(geo, dict) or "type" not in geo or "coordinates" not in geo:
        raise ValidationError(f"{field}: expected a GeoJSON geometry with type and coordinates", field=field)
    try:
        from shapely.geometry import shape

        shape(geo)
    except Exception as exc:
        raise ValidationError(f"{field}: invalid GeoJSON geometry: {exc}", field=field) from None


def to_entity(rt: CityBrain, data: EntityInput) -> Entity:
    """Validate an EntityInput against the model and return the Entity to store."""
    check_id(data.id, "id")
    if not _NAME.match(data.type):
        raise ValidationError(f"type: {data.type!r} is not a valid type name", field="type")
    attrs = check_attrs(data.attrs)
    location = data.location
    if location is None and "location" in attrs:
        location = attrs["location"]["value"]
    if location is not None:
        check_geometry(location, "location")
        attrs.setdefault("location", {"type": "GeoProperty", "value": location})
    places: PlaceIndex = rt.ports.places
    place = data.place
    if data.type in PLACE_LEVELS:
        why = places.check_parent(data.type, place)
        if why:
            raise ValidationError(f"place: {why}", field="place")
    elif place is not None and place not in places:
        raise ValidationError(f"place: unknown place {place}", field="place")
    elif place is None and location is not None and location.get("type") == "Point":
        lon, lat = location["coordinates"][:2]
        place = places.locate(float(lon), float(lat))
    now = rt.now()
    return Entity(id=data.id, type=data.type, attrs=attrs, place=place, location=location,
                  created_at=now, modified_at=now, scope=data.scope)


async def write_entity(rt: CityBrain, cmd: EntityWrite, ctx: Context) -> Outcome:
    """Create (or upsert/replace) an entity; a create of an existing id fails in the store (AlreadyExists)."""
    directory: Directory = rt.ports.directory
    await directory.load_places([cmd.entity.place])
    entity = to_entity(rt, cmd.entity)
    # no check against memory for a create: another process may have created or deleted the id a moment
    # ago; the store's create mode fails atomically, and the caller gets AlreadyExists from there

    async def after() -> None:
        directory.ran_here(ctx.id)
        directory.add(entity.id, entity.type, entity.place)
        if entity.type in PLACE_LEVELS:
            rt.ports.places.add(entity)

    return Outcome(ops=[UpsertEntity(entity, mode=cmd.mode)], result=entity.id,
                   event={"id": entity.id, "type": entity.type, "mode": cmd.mode, "place": entity.place}, after=after)


async def update_attrs(rt: CityBrain, cmd: AttrsWrite, ctx: Context) -> Outcome:
    """Merge attributes into an existing entity."""
    directory: Directory = rt.ports.directory
    if await directory.type_of(cmd.id) is None:
        raise NotFound(f"entity {cmd.id} not found", field="id")
    attrs = check_patches(cmd.attrs) if cmd.merge else check_attrs(cmd.attrs)
    places: PlaceIndex = rt.ports.places

    async def after() -> None:
        if cmd.id in places:  # a place's polygon or name changed: this process reloads it now, others on the event
            directory.ran_here(ctx.id)
            await directory.refresh_places([cmd.id])

    return Outcome(ops=[SetAttrs(cmd.id, attrs, rt.now(), merge=cmd.merge)], result=cmd.id,
                   event={"id": cmd.id, "attrs": sorted(attrs)}, after=after)


async def delete_entity(rt: CityBrain, cmd: EntityRef, ctx: Context) -> Outcome:
    """Delete an entity (its history stays)."""
    directory: Directory = rt.ports.directory
    if await directory.type_of(cmd.id) is None:
        raise NotFound(f"entity {cmd.id} not found", field="id")
    places: PlaceIndex = rt.ports.places
    if places.children.get(cmd.id):
        raise ValidationError(f"id: place {cmd.id} still has places inside it", field="id")

    async def after() -> None:
        directory.ran_here(ctx.id)
        directory.remove(cmd.id)
        places.remove(cmd.id)

    return Outcome(ops=[DeleteEntity(cmd.id)], result=cmd.id, event={"id": cmd.id}, after=after)


# where the entity commands touch the city (judged against a confined actor's area) -------------------------------
def place_at(rt: CityBrain, place: str | None, lon: Any = None, lat: Any = None) -> str | None:
    """Return `place` if given, else the grid cell the point (lon, lat) lies in, else None."""
    if place is not None:
        return place
    if lon is None or lat is None:
        return None
    try:
        return rt.ports.places.locate(float(lon), float(lat))
    except (TypeError, ValueError):
        return None


def new_place(rt: CityBrain, data: EntityInput) -> str | None:
    """Return the place an entity written from `data` will lie in (its parent, for a place)."""
    if data.place is not None:
        return data.place
    location = data.location
    if location is None and isinstance(data.attrs.get("location"), dict):
        location = data.attrs["location"].get("value")
    if isinstance(location, dict) and location.get("type") == "Point":
        point = location.get("coordinates")
        if isinstance(point, list) and len(point) >= 2:
            return place_at(rt, None, point[0], point[1])
    return None


async def current_places(rt: CityBrain, ids: list[str]) -> list[str | None]:
    """Return the places of the entities that exist among `ids` (None for one nobody placed)."""
    directory: Directory = rt.ports.directory
    await directory.resolve(ids, places=True)
    return [directory.places.get(i) for i in ids if i in directory.types]


async def places_written(rt: CityBrain, inputs: list[EntityInput]) -> list[str | None]:
    """Return where writes of these entities land, and where those that exist lie now."""
    return [new_place(rt, e) for e in inputs] + await current_places(rt, [e.id for e in inputs])


async def locate_write(rt: CityBrain, cmd: EntityWrite) -> list[str | None]:
    """entity.write touches the entity's new place and, when it exists, its current one."""
    return await places_written(rt, [cmd.entity])


async def locate_existing(rt: CityBrain, cmd: AttrsWrite | EntityRef) -> list[str | None]:
    """entity.update / entity.delete touch the entity where it lies (an unknown id: nothing to refuse)."""
    return await current_places(rt, [cmd.id])


async def setup(rt: CityBrain) -> None:
    """Load the place index and the entity directory, keep them current from every process's entity events,
    and register the model commands."""
    places = PlaceIndex()
    directory = Directory(rt.store, places)
    rt.ports.places = places
    rt.ports.directory = directory
    # subscribe before loading: an entity created or deleted by another process while we load is not missed
    # (no durable/queue name: every process gets every event)
    await rt.bus.subscribe(ENTITY_EVENTS, directory.on_event)
    await directory.load()
    rt.commands.register("entity.write", EntityWrite, write_entity, "create, upsert or replace an entity",
                         place=locate_write)
    rt.commands.register("entity.update", AttrsWrite, update_attrs, "merge attributes into an entity",
                         place=locate_existing)
    rt.commands.register("entity.delete", EntityRef, delete_entity, "delete an entity (history is kept)",
                         place=locate_existing)
