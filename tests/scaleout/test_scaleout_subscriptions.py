"""NGSI-LD subscriptions on a node of three processes: one notification per change, whoever took the write."""

from __future__ import annotations

import time

import pytest
from scaleout.node import Node, fresh_token
from scaleout.receiver import Receiver

pytestmark = [pytest.mark.slow]  # postgres, nats: on the 3-pg-nats deployment (conftest.py)

SETTLE = 2.0  # seconds to wait for notifications that should not come


@pytest.mark.timeout(90)
def test_one_notification_per_update_whichever_process_writes(node: Node) -> None:
    eid = f"urn:ngsi-ld:Vehicle:{fresh_token('v')}"
    r = node.at(0).post("/ngsi-ld/v1/entities", json={"id": eid, "type": "Vehicle",
                                                      "speed": {"type": "Property", "value": 0}})
    assert r.status_code == 201, r.text
    with Receiver() as rx:
        sub = {"type": "Subscription", "entities": [{"type": "Vehicle", "id": eid}], "watchedAttributes": ["speed"],
               "notification": {"endpoint": {"uri": rx.url, "accept": "application/json"}, "attributes": ["speed"]}}
        r = node.at(0).post("/ngsi-ld/v1/subscriptions", json=sub)
        assert r.status_code == 201, r.text
        sub_path = r.headers["Location"]
        for i in range(3):  # every process serves the subscription it did not create
            seen = node.at(i).get(sub_path)
            assert seen.status_code == 200, f"p{i + 1}: {seen.status_code} {seen.text}"
        time.sleep(SETTLE)  # give every process time to learn of the subscription before the first write
        baseline = len(rx.received())  # a broker may send an initial notification; count from here

        for step, i in enumerate((1, 2, 0), start=1):  # an update through each process, the creator last
            value = 100 * step
            r = node.at(i).patch(f"/ngsi-ld/v1/entities/{eid}/attrs", json={"speed": {"type": "Property",
                                                                                   "value": value}})
            assert r.status_code == 204, r.text
            rx.wait(baseline + step, timeout=10)
            time.sleep(0.5)  # a duplicate from another process would arrive about now
            speeds = rx.values("speed")[baseline:]
            assert speeds == [100 * s for s in range(1, step + 1)], (
                f"after the update on p{i + 1}: notified speeds {speeds} (want one notification per update)")

        r = node.at(1).delete(sub_path)
        assert r.status_code == 204, r.text
        for i in range(3):
            gone = node.at(i).get(sub_path)
            assert gone.status_code == 404, f"p{i + 1} still has the deleted subscription: {gone.status_code}"
        time.sleep(SETTLE)  # the deletion reaches every process
        before = len(rx.received())
        for step, i in enumerate((0, 1, 2)):
            r = node.at(i).patch(f"/ngsi-ld/v1/entities/{eid}/attrs", json={"speed": {"type": "Property",
                                                                                   "value": 1000 + step}})
            assert r.status_code == 204, r.text
        time.sleep(SETTLE)
        after = rx.values("speed")[before:]
        assert after == [], f"notified after the subscription was deleted on p2: speeds {after}"
