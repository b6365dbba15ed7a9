"""End to end: a sensor observation → rule → alert → case dispatched to the right department, untouched."""

from __future__ import annotations

from pathlib import Path

from risk.test_risk import ingest, make_city, obs  # type: ignore[import-not-found]

RULES = """rules:
  - id: pm25
    name: PM2.5 test
    category: air.pollution
    quantity: pm25
    levels: {blue: {above: 150}, red: {above: 500}}
"""


async def test_sensor_observation_reaches_the_ecology_department(tmp_path: Path) -> None:
    rt = await make_city(tmp_path, RULES)
    try:
        await ingest(rt, [obs("AirQualityObserved", "dense", "pm25", 380)])
        await rt.bus.drain()
        await rt.bus.drain()
        (doc,) = await rt.store.list_docs("cases")
        case = doc.data
        assert case["state"] == "dispatched" and case["category"] == "E0601" and case["departments"] == ["ecology"]
        assert case["channel"] == "alert" and case["place"] == "urn:ngsi-ld:Grid:dense"
        assert all(e["actor"].startswith("system:") for e in case["timeline"])  # nobody touched it
        alert = next(iter(rt.ports.alerts.open.values()))
        assert case["sources"][0]["ref"] == alert["id"] and alert["case"] == case["id"]  # linked both ways
    finally:
        await rt.stop()
