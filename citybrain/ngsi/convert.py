"""NGSI-LD payloads ↔ stored entities: validation, term expansion on the way in, compaction and the
normalized, concise and keyValues representations on the way out."""

from __future__ import annotations

from typing import Any

from citybrain.clock import normalise_time
from citybrain.errors import ValidationError
from citybrain.model.entity import Entity
from citybrain.model.urn import is_urn
from citybrain.ngsi.errors import BadRequestData
from citybrain.ngsi.ldcontext import ActiveContext, from_storage, to_storage

ATTR_TYPES = {"Property", "Relationship", "GeoProperty", "LanguageProperty", "ListProperty", "VocabProperty",
              "JsonProperty", "ListRelationship"}
GEO_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}
# keys of an attribute object that are not sub-attributes
META = {"type", "value", "object", "languageMap", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt",
        "instanceId", "vocab", "json", "valueList", "objectList", "objectType", "lang", "previousValue",
        "deletedAt", "@context"}
NULL = "urn:ngsi-ld:null"
_VALUE_KEY = {"Relationship": "object", "ListRelationship": "objectList", "LanguageProperty": "languageMap",
              "VocabProperty": "vocab", "JsonProperty": "json", "ListProperty": "valueList"}


def check_geo(value: Any, name: str) -> None:
    """Raise BadRequestData unless `value` is a valid GeoJSON geometry."""
    if not isinstance(value, dict) or value.get("type") not in GEO_TYPES or "coordinates" not in value:
        raise BadRequestData(f"{name}: a GeoProperty value must be a GeoJSON geometry")
    try:
        from shapely.geometry import shape

        if not shape(value).is_valid and value["type"] != "Polygon":
            raise ValueError("invalid geometry")
    except Exception as exc:
        raise BadRequestData(f"{name}: invalid GeoJSON geometry ({exc})") from None


# Multi-attributes: every instance of an attribute is stored under its own key. The default instance (no
# datasetId) keeps the attribute's name; an instance with a datasetId is stored as "<name> <datasetId>". A
# space can be neither in an attribute name (check_name) nor in an IRI, so the key splits back unambiguously.
SEP = " "


def instance_key(name: str, dataset_id: str | None) -> str:
    """Return the stored key of the instance of attribute `name` with `dataset_id` (None: default instance)."""
    return name if dataset_id is None else f"{name}{SEP}{dataset_id}"


def split_key(key: str) -> tuple[str, str | None]:
    """Return (attribute name, datasetId or None) of a stored key."""
    name, _, dataset_id = key.partition(SEP)
    return name, dataset_id or None


def dataset_of(raw: Any, name: str) -> str | None:
    """Return the datasetId of an attribute payload (None: the default instance); it must be a URI."""
    if not isinstance(raw, dict) or "datasetId" not in raw:
        return None
    ds = raw["datasetId"]
    if not is_urn(ds):
        raise BadRequestData(f"{name}: datasetId {ds!r} is not a URI")
    return str(ds)


def is_multi(raw: Any) -> bool:
    """Tell whether an attribute payload is an array of instances (each a typed attribute object or one with a
    datasetId) rather than a keyValues array value."""
    return isinstance(raw, list) and bool(raw) and all(
        isinstance(x, dict) and ("datasetId" in x or x.get("type") in ATTR_TYPES) for x in raw) and any(
        isinstance(x, dict) and "datasetId" in x for x in raw)


def instances_in(name: str, raw: Any, ctx: ActiveContext, allow_null: bool = False) -> dict[str, dict[str, Any]]:
    """Validate an attribute that may be an array of instances; return {stored instance key: stored attribute}."""
    stored = to_storage(name, ctx)
    if not is_multi(raw):
        return {instance_key(stored, dataset_of(raw, name)): attr_in(name, raw, ctx, allow_null)}
    out: dict[str, dict[str, Any]] = {}
    for item in raw:
        key = instance_key(stored, dataset_of(item, name))
        if key in out:
            ds = item.get("datasetId")
            raise BadRequestData(f"{name}: two instances with " + (f"datasetId {ds}" if ds else "no datasetId"))
        out[key] = attr_in(name, item, ctx, allow_null)
    return out


def attr_in(name: str, raw: Any, ctx: ActiveContext, allow_null: bool = False) -> dict[str, Any]:
    """Validate one attribute (normalized, concise or keyValues) and return it in stored form."""
    if is_multi(raw):
        raise BadRequestData(f"{name}: an array of instances is not allowed here; send one instance")
    if not isinstance(raw, dict):
        if raw is None and not allow_null:
            raise BadRequestData(f"{name}: null is not a valid attribute value")
        return {"type": "Property", "value": raw}
    kind = raw.get("type")
    if kind is None:
        if "object" in raw:
            kind = "Relationship"
        elif "languageMap" in raw:
            kind = "LanguageProperty"
        elif "value" in raw:
            kind = "GeoProperty" if isinstance(raw["value"], dict) and raw["value"].get("type") in GEO_TYPES \
                else "Property"
        else:
            return {"type": "Property", "value": raw}  # a plain JSON object value (keyValues)
    elif kind in GEO_TYPES and "value" not in raw:
        check_geo(raw, name)
        return {"type": "GeoProperty", "value": raw}
    elif kind not in ATTR_TYPES:
        if any(k in raw for k in ("value", "object", "languageMap")):
            raise BadRequestData(f"{name}: {kind!r} is not an NGSI-LD attribute type (Property, Relationship, …)")
        return {"type": "Property", "value": raw}
    key = _VALUE_KEY.get(kind, "value")
    if key not in raw:
        raise BadRequestData(f"{name}: a {kind} needs {key!r}")
    value = raw[key]
    if value is None and not allow_null:
        raise BadRequestData(f"{name}: {key} must not be null")
    if kind == "Relationship" and not (is_urn(value) or (isinstance(value, list) and all(map(is_urn, value)))):
        raise BadRequestData(f"{name}: a Relationship object must be a URI")
    if kind == "GeoProperty" and value != NULL:
        check_geo(value, name)
    if kind == "LanguageProperty" and not isinstance(value, dict):
        raise BadRequestData(f"{name}: languageMap must be an object")
    out: dict[str, Any] = {"type": kind, key: value}
    for meta in ("observedAt", "unitCode", "datasetId", "objectType", "lang"):
        if meta in raw:
            out[meta] = raw[meta]
    if "observedAt" in out:
        try:
            out["observedAt"] = normalise_time(out["observedAt"], f"{name}.observedAt")
        except ValidationError as exc:
            raise BadRequestData(exc.detail) from None
    if "unitCode" in out and not isinstance(out["unitCode"], str):
        raise BadRequestData(f"{name}: unitCode must be a string")
    for sub, sub_raw in raw.items():
        if sub not in META:
            out[to_storage(sub, ctx)] = attr_in(f"{name}.{sub}", sub_raw, ctx)
    return out


def check_name(name: Any) -> str:
    """Raise BadRequestData unless `name` can be an attribute name."""
    if not isinstance(name, str) or not name or any(c in name for c in " <>\"'=;()\\\t\n") or len(name) > 512:
        raise BadRequestData(f"{name!r} is not a valid attribute name")
    return name


def attrs_in(body: dict[str, Any], ctx: ActiveContext, allow_null: bool = False) -> dict[str, dict[str, Any]]:
    """Return the attributes of a payload (every key but id, type, @context) in stored form."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in body.items():
        if name in ("id", "type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt"):
            continue
        check_name(name)
        out.update(instances_in(name, raw, ctx, allow_null))
    return out


def entity_type_in(raw: Any, ctx: ActiveContext) -> str:
    """Return the stored name of an entity type (a single type; multi-typing takes a one-element list)."""
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if not isinstance(raw, str) or not raw or any(c in raw for c in " <>\"'=;,()\\"):
        raise BadRequestData(f"type: {raw!r} is not a valid entity type")
    return to_storage(raw, ctx)


def entity_in(body: Any, ctx: ActiveContext, need_id: bool = True) -> tuple[str, str, dict[str, Any]]:
    """Validate an entity payload; return (id, stored type, stored attributes)."""
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    eid = body.get("id", body.get("@id"))
    if need_id or eid is not None:
        if not is_urn(eid):
            raise BadRequestData(f"id: {eid!r} is not a URI such as urn:ngsi-ld:Type:id")
    if "type" not in body and "@type" not in body:
        raise BadRequestData("type: an entity needs a type")
    etype = entity_type_in(body.get("type", body.get("@type")), ctx)
    return str(eid or ""), etype, attrs_in(body, ctx)


def _attr_out(attr: dict[str, Any], ctx: ActiveContext, fmt: str, sys_attrs: bool) -> Any:
    kind = attr.get("type", "Property")
    key = _VALUE_KEY.get(kind, "value")
    if fmt == "keyValues":
        return attr.get(key)
    out: dict[str, Any] = {}
    for k, v in attr.items():
        if k in META:
            if k in ("createdAt", "modifiedAt") and not sys_attrs:
                continue
            out[k] = v
        else:
            out[from_storage(k, ctx)] = _attr_out(v, ctx, fmt, sys_attrs) if isinstance(v, dict) else v
    if fmt == "concise":
        out.pop("type", None)
        if len(out) == 1 and key == "value":
            return out["value"]
        if kind == "GeoProperty" and len(out) == 1:
            return out["value"]
    return out


def entity_out(
    entity: Entity,
    ctx: ActiveContext,
    fmt: str = "normalized",
    attrs: set[str] | None = None,
    pick: set[str] | None = None,
    omit: set[str] | None = None,
    sys_attrs: bool = False,
) -> dict[str, Any]:
    """Render a stored entity in the request's context and representation (attrs are stored names)."""
    out: dict[str, Any] = {"id": entity.id, "type": from_storage(entity.type, ctx)}
    if sys_attrs:
        out["createdAt"], out["modifiedAt"] = entity.created_at, entity.modified_at
    items = dict(entity.attrs)
    if entity.location is not None and "location" not in items:
        items["location"] = {"type": "GeoProperty", "value": entity.location}
    for name, group in grouped(items).items():
        if attrs is not None and name not in attrs:
            continue
        if pick is not None and name not in pick:
            continue
        if omit is not None and name in omit:
            continue
        shown = [_attr_out(a, ctx, fmt, sys_attrs) for a in group]
        out[from_storage(name, ctx)] = shown[0] if len(shown) == 1 else shown
    if pick is not None:
        for key in ("id", "type"):
            if key not in pick:
                out.pop(key, None)
    if omit is not None:
        for key in ("id", "type"):
            if key in omit:
                out.pop(key, None)
    return out


def grouped(attrs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group stored attributes by name: the default instance first, then instances by datasetId."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, attr in attrs.items():
        name, ds = split_key(key)
        out.setdefault(name, []).append((ds or "", attr))
    return {name: [a for _, a in sorted(group, key=lambda g: g[0])] if len(group) > 1 else [group[0][1]]
            for name, group in out.items()}


def instance_keys(attrs: dict[str, Any], name: str) -> list[str]:
    """Return the stored keys of every instance of attribute `name` (stored name)."""
    return [k for k in attrs if k == name or k.startswith(name + SEP)]


def merge_attr(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch one attribute: keys in `patch` replace those in `old`; urn:ngsi-ld:null removes."""
    out = dict(old)
    for key, value in patch.items():
        if value == NULL:
            out.pop(key, None)
        elif key not in META and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_attr(out[key], value)
        else:
            out[key] = value
    if patch.get("type") and patch["type"] != old.get("type"):
        return patch
    return out
