"""Serving a catalog dataset under a grant: rows, area filter, field filter, formats with provenance.

Fields a grant does not allow are dropped (or, with masking "mask", replaced by "***") before a row
is encoded, so they never leave the server. Every served download is recorded in the ledger as a
`data.access` event (who, dataset, how many records, which grant) before the response is sent.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.context import Context
from citybrain.errors import CityBrainError, Forbidden, ValidationError
from citybrain.ports import Ports
from citybrain.store import EntityQuery
from citybrain.trust.catalog import Dataset, credential_source
from citybrain.trust.grants import Grant

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "geojson": "application/geo+json",
           "parquet": "application/vnd.apache.parquet"}
STRUCTURAL = ("id", "type")
MASK = "***"


class NotAcceptable(CityBrainError):
    """The requested format cannot be produced here (HTTP 406)."""

    status = 406
    code = "NotAcceptable"


def area_places(rt: CityBrain, *areas: str | None) -> set[str] | None:
    """Return the places inside every given area (intersection), or None if no area applies."""
    index = rt.ports.find(Ports.places)
    result: set[str] | None = None
    for area in areas:
        if area is None:
            continue
        below = set(index.descendants(area)) if index is not None and area in index else set()
        inside = {area} | below
        result = inside if result is None else result & inside
    return result


async def rows_of(rt: CityBrain, ds: Dataset, places: set[str] | None, limit: int) -> list[dict[str, Any]]:
    """Return the dataset's rows as flat dicts (only rows inside `places` when given)."""
    src = ds.source
    why = credential_source(src)
    if why is not None:  # a dataset stored before the rule (or written around the command): still never served
        raise Forbidden(why, field="source")
    if src.kind == "entities":
        q = EntityQuery(types=src.types or None, places=sorted(places) if places is not None else None, limit=limit)
        found = await rt.store.query_entities(q)
        if places is not None:  # places themselves: keep those inside the area
            extra = EntityQuery(types=src.types or None, ids=sorted(places), limit=limit)
            seen = {e.id for e in found}
            found += [e for e in await rt.store.query_entities(extra) if e.id not in seen]
        return [{"id": e.id, "type": e.type, "place": e.place, "location": e.location,
                 **{k: e.value(k) for k in e.attrs}} for e in found]
    if src.kind == "docs":
        docs = await rt.store.list_docs(src.collection, limit=limit)
        rows = [{"id": d.id, **d.data} for d in docs]
    else:
        events = await rt.store.events(0, src.type_prefix or None, limit)
        rows = [{"id": e.id, "type": e.type, "time": e.time, **e.data} for e in events]
    if places is not None:
        rows = [r for r in rows if r.get("place") in places or r.get("id") in places]
    return rows


def restrict(rows: list[dict[str, Any]], ds: Dataset, grant: Grant | None) -> list[dict[str, Any]]:
    """Keep the catalog's fields, then drop or mask what the grant does not allow."""
    listed = set(ds.fields) | set(STRUCTURAL) if ds.fields else None
    allowed = None if grant is None or grant.fields is None else set(grant.fields) | set(STRUCTURAL)
    mask = grant is not None and grant.masking == "mask"
    out = []
    for row in rows:
        kept: dict[str, Any] = {}
        for key, value in row.items():
            if listed is not None and key not in listed:
                continue
            if allowed is not None and key not in allowed:
                if mask:
                    kept[key] = MASK
                continue
            kept[key] = value
        out.append(kept)
    return out


def provenance(ds: Dataset, grant: Grant | None, now: str, access_id: str) -> dict[str, str]:
    """Return the provenance of one download."""
    return {"dataset": ds.id, "grant": grant.id if grant else "open", "time": now, "access": access_id,
            "classification": ds.classification, "owner": ds.owner}


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Defuse a CSV cell a spreadsheet would run as a formula (OWASP CSV injection): a text starting with
    = + - @ tab or CR gets a leading apostrophe. Numbers stay numbers (-3.5 is written as -3.5)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _one_line(value: Any) -> str:
    """Return a provenance value fit for one `# key: value` comment line."""
    return str(value).replace("\r", " ").replace("\n", " ")


def encode(rows: list[dict[str, Any]], fmt: str, prov: dict[str, str]) -> bytes:
    """Encode rows in a format, with the provenance inside the file."""
    if fmt == "json":
        return orjson.dumps({"provenance": prov, "records": rows})
    if fmt == "csv":
        buf = io.StringIO()
        for key, value in prov.items():
            buf.write(f"# {_one_line(key)}: {_one_line(value)}\n")
        columns = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.writer(buf)
        writer.writerow([csv_cell(c) for c in columns])
        for r in rows:
            writer.writerow([csv_cell(orjson.dumps(v).decode() if isinstance(v, dict | list) else v)
                             for v in (r.get(c) for c in columns)])
        return buf.getvalue().encode()
    if fmt == "geojson":
        feats = [{"type": "Feature", "id": r.get("id"), "geometry": r.get("location"),
                  "properties": {k: v for k, v in r.items() if k != "location"}} for r in rows]
        return orjson.dumps({"type": "FeatureCollection", "properties": {"provenance": prov}, "features": feats})
    if fmt == "parquet":
        return _parquet(rows, prov)
    raise ValidationError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")


def _parquet(rows: list[dict[str, Any]], prov: dict[str, str]) -> bytes:
    try:
        import pyarrow as pa  # type: ignore[import-not-found]
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        raise NotAcceptable("parquet export needs pyarrow, which is not installed on this node; "
                            "use format=csv, json or geojson") from None
    flat = [{k: orjson.dumps(v).decode() if isinstance(v, dict | list) else v for k, v in r.items()} for r in rows]
    table = pa.Table.from_pylist(flat).replace_schema_metadata({f"citybrain.{k}": v for k, v in prov.items()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


async def serve(rt: CityBrain, ctx: Context, ds: Dataset, grant: Grant | None, scope_area: str | None,
                fmt: str, limit: int) -> tuple[bytes, dict[str, str]]:
    """Return (body, provenance headers) of a download, after recording the access in the ledger."""
    if fmt not in FORMATS:
        raise ValidationError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    if ds.classification != "open" and grant is None and ctx.actor.split(":", 1)[0] not in ("admin", "data_officer"):
        raise Forbidden(f"dataset {ds.id} is {ds.classification}: it needs an approved grant", field="grant")
    places = area_places(rt, grant.area if grant else None, scope_area)
    rows = restrict(await rows_of(rt, ds, places, limit), ds, grant)
    prov = provenance(ds, grant, rt.now(), ctx.id)
    body = encode(rows, fmt, prov)
    ledger = rt.ports.find(Ports.ledger)
    more = {"format": fmt, "area": (grant.area if grant else None) or scope_area}
    if ledger is not None:
        await ledger.record_access(ctx, ds.id, len(rows), grant.id if grant else None, **more)
    else:
        await rt.emit("data.access", {"actor": ctx.actor, "dataset": ds.id, "count": len(rows),
                                      "grant": grant.id if grant else None, **more}, ctx)
    headers = {f"X-Citybrain-{k.capitalize()}": v for k, v in prov.items()}
    headers["X-Total-Count"] = str(len(rows))
    return body, headers
