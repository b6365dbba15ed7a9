"""Entity CRUD with ngsildclient: create, exists, get (ld+json), conflict, upsert, update, delete."""

from __future__ import annotations

from _common import client, emit
from ngsildclient import Entity
from ngsildclient.api.exceptions import NgsiAlreadyExistsError

c = client()
out: dict = {"connected": c.is_connected()}
e = Entity("AirQualityObserved", "CRUD:Obs1")
e.prop("pm25", 12.5, observedat="2024-01-01T00:00:00Z")
e.prop("name", "Sensor 1")
e.gprop("location", (44.0, -8.6))
e.rel("refDevice", "urn:ngsi-ld:Device:D1")
out["created"] = c.create(e)
out["exists"] = c.exists(e.id)
got = c.get(e.id)
out["got"] = got.to_dict()
out["got_raw"] = c.get(e.id, asdict=True)
try:
    c.entities.create(e)
    out["conflict"] = None
except NgsiAlreadyExistsError as exc:
    out["conflict"] = type(exc).__name__
e["pm25"].value = 20.0
out["upserted"] = c.upsert(e)
out["after_upsert"] = c.get(e.id).to_dict()["pm25"]["value"]
e["pm25"].value = 30.0
out["updated"] = c.update(e)
out["after_update"] = c.get(e.id).to_dict()["pm25"]["value"]
out["deleted"] = c.delete(e)
out["exists_after_delete"] = c.exists(e.id)
emit(out)
