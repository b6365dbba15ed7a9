"""Query with count: create N entities of two types, then count / query / query_head / q / paging."""

from __future__ import annotations

from _common import client, emit
from ngsildclient import Entity

c = client()
parks = [Entity("ParkingSpot", f"Q:P{i:03d}").prop("status", "free" if i % 3 else "occupied")
         .prop("occupancy", i) for i in range(120)]
roads = [Entity("RoadSegment", f"Q:R{i}").prop("laneCount", 2) for i in range(7)]
res = c.create(parks + roads)
out = {
    "created_ok": res.n_ok, "created_err": res.n_err,
    "count_parks": c.count(type="ParkingSpot"),
    "count_roads": c.count(type="RoadSegment"),
    "count_q": c.count(type="ParkingSpot", q='status=="occupied"'),
    "count_range": c.count(type="ParkingSpot", q="occupancy>=10;occupancy<20"),
    "count_none": c.count(type="NoSuchType"),
    # query() pages with limit/offset until it has `count` entities
    "query_all": sorted(x.id for x in c.query(type="ParkingSpot")),
    "query_q": sorted(x.id for x in c.query(type="ParkingSpot", q="occupancy>115")),
    "query_head": len(c.query_head(type="ParkingSpot", n=5)),
    "types": sorted(c.types.list()),
}
emit(out)
