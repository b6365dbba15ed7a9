"""Batch upsert with ngsildclient: 250 entities (3 batches of 100), again (replace), with update=True,
then batch update and batch delete."""

from __future__ import annotations

from _common import client, emit
from ngsildclient import Entity

c = client()


def fleet(speed: float) -> list:
    return [Entity("Vehicle", f"B:V{i:03d}").prop("speed", speed + i).prop("brand", "Acme") for i in range(250)]


first = c.upsert(fleet(10.0))
again = c.upsert(fleet(20.0))
one = c.get("urn:ngsi-ld:Vehicle:B:V007").to_dict()
partial = [Entity("Vehicle", f"B:V{i:03d}").prop("colour", "red") for i in range(3)]
merged = c.upsert(partial, update=True)
merged_one = c.get("urn:ngsi-ld:Vehicle:B:V001").to_dict()
replaced = c.upsert(partial)
replaced_one = c.get("urn:ngsi-ld:Vehicle:B:V001").to_dict()
upd = c.update([Entity("Vehicle", f"B:V{i:03d}").prop("speed", 99) for i in range(10, 15)])
v12 = c.get("urn:ngsi-ld:Vehicle:B:V012").to_dict()["speed"]["value"]
count = c.count(type="Vehicle")
# the client's batch delete only handles a 204 for Entity objects (not ids): a client bug, not ours
deleted = c.delete(fleet(0.0)[:200])
emit({
    "first": [first.n_ok, first.n_err], "again": [again.n_ok, again.n_err],
    "v7_speed": one["speed"]["value"],
    "merged": [merged.n_ok, merged.n_err], "merged_attrs": sorted(k for k in merged_one if k not in ("id", "type", "@context")),
    "replaced": [replaced.n_ok, replaced.n_err],
    "replaced_attrs": sorted(k for k in replaced_one if k not in ("id", "type", "@context")),
    "updated": [upd.n_ok, upd.n_err], "v12_speed": v12,
    "count": count, "deleted": [deleted.n_ok, deleted.n_err], "count_after": c.count(type="Vehicle"),
})
