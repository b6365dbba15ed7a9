"""Finding 1 of issue #20: the actor of a write comes from the authenticated identity, never from a header."""

from __future__ import annotations

import re
from pathlib import Path

from trustcity import T1, City

FORGED = {"X-Citybrain-Actor": "admin:mallory"}
LD = {"Content-Type": "application/json"}


async def _ledger_text(city: City) -> str:
    await city.rt.ports.ledger.flush()  # append every recorded event now
    r = await city.client.get("/api/v1/ledger/entries", headers=city.auth("admin"))
    return r.text


async def test_ngsi_write_ignores_a_forged_actor_header(city: City) -> None:
    h = city.auth("city_operator") | FORGED | LD
    r = await city.client.patch(f"/ngsi-ld/v1/entities/{T1}/attrs", json={"intensity": {"type": "Property", "value": 7}},
                                headers=h)
    assert r.status_code == 204, r.text
    ev = (await city.rt.store.events(type_prefix="command.entity"))[-1]
    assert ev.context.actor == "city_operator:city-operator"
    text = await _ledger_text(city)
    assert "city_operator:city-operator" in text and "mallory" not in text


async def test_ngsi_subscription_ignores_a_forged_actor_header(city: City) -> None:
    sub = {"type": "Subscription", "entities": [{"type": "TrafficFlowObserved"}],
           "notification": {"endpoint": {"uri": "http://sink.test/n"}}}
    r = await city.client.post("/ngsi-ld/v1/subscriptions", json=sub, headers=city.auth("city_operator") | FORGED | LD)
    assert r.status_code == 201, r.text
    ev = (await city.rt.store.events(type_prefix="command.ngsi.subscription"))[-1]
    assert ev.context.actor == "city_operator:city-operator"


def test_no_code_reads_an_actor_from_a_header() -> None:
    """Only the auth=off demo path in citybrain/api/routes.py's actor_of may look at X-Citybrain-Actor."""
    root = Path(__file__).resolve().parents[2] / "citybrain"
    readers = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"x-citybrain-actor", text, re.I):
            readers.append(path.relative_to(root).as_posix())
    assert readers == ["api/routes.py"]
