"""Temporal queries with ngsildclient: write a series with observedAt, then temporal.get / query (lastN,
between) / aggregate."""

from __future__ import annotations

from datetime import timedelta

from _common import client, emit
from ngsildclient import Entity
from ngsildclient.api.constants import AggrMethod
from ngsildclient.api.helper.temporal import TemporalQuery

c = client()
eid = "urn:ngsi-ld:TrafficFlowObserved:T:F1"
for i in range(6):
    e = Entity("TrafficFlowObserved", "T:F1").prop("intensity", 100 + 10 * i, observedat=f"2024-03-01T0{i}:00:00Z")
    c.upsert([e], update=True)
c.upsert([Entity("TrafficFlowObserved", "T:F2").prop("intensity", 7, observedat="2024-03-01T00:30:00Z")])
window = TemporalQuery().between("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z")
got = c.temporal.get(eid)
verbose = c.temporal.get(eid, verbose=True)
last2 = c.temporal.query(eid=eid, tq=window, lastn=2)
by_type = c.temporal.query(type="TrafficFlowObserved", tq=window)
between = c.temporal.query(type="TrafficFlowObserved", tq=TemporalQuery().between(
    "2024-03-01T01:30:00Z", "2024-03-01T03:30:00Z"))
agg = c.temporal.aggregate(type="TrafficFlowObserved", attrs=["intensity"], tq=window,
                           methods=[AggrMethod.AVERAGE, AggrMethod.MAXIMUM, AggrMethod.TOTAL_COUNT],
                           period=timedelta(days=1))
emit({"get": got, "verbose": verbose, "last2": last2, "by_type": by_type, "between": between,
      "aggregate": agg.result})
