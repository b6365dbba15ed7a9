"""Subscriptions with ngsildclient: create one (SubscriptionBuilder) notifying argv[2], list, get, then
update the watched entity so a notification fires; purge happens in a second call (argv[3] == purge)."""

from __future__ import annotations

import sys

from _common import client, emit
from ngsildclient import Entity, SubscriptionBuilder

c = client()
if len(sys.argv) > 3 and sys.argv[3] == "purge":
    before = len(c.subscriptions.list())
    c.subscriptions.purge()
    emit({"before": before, "after": len(c.subscriptions.list())})
    raise SystemExit(0)

c.create(Entity("WeatherObserved", "S:W1").prop("temperature", 10.0).prop("humidity", 0.5))
sub = (SubscriptionBuilder(sys.argv[2]).description("citybrain ngsildclient test")
       .select_type("WeatherObserved").watch(["temperature"]).query("temperature>20").build())
sid = c.subscriptions.create(sub)
listed = c.subscriptions.list()
got = c.subscriptions.get(sid)
exists = c.subscriptions.exists(sid)
conflicts = c.subscriptions.conflicts(sub)
w = Entity("WeatherObserved", "S:W1").prop("temperature", 15.0).prop("humidity", 0.6)
c.update(w)  # q does not match: no notification
w["temperature"].value = 25.0
c.update(w)  # matches
emit({"id": sid, "listed": [s["id"] for s in listed], "got": got, "exists": exists, "conflicts": len(conflicts)})
