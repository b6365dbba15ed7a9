"""A small test city written through the HTTP API of a node, round robin across its processes.

1 city, 2 districts (one subdistrict each), 4 communities, 16 grid cells (4 x 4, 2 x 2 cells per community),
and one rain gauge (WeatherObserved) in the middle of every cell.
"""

from __future__ import annotations

from typing import Any

from scaleout.node import Node

from citybrain.testing import Sensor, TestCity

TOWN = TestCity(city="urn:ngsi-ld:City:so", population=5000,
                sensors=(Sensor("WeatherObserved", "urn:ngsi-ld:WeatherObserved:rain-{i}{j}"),))
CITY = TOWN.city
box, cell, community, district, centre = TOWN.box, TOWN.cell, TOWN.community, TOWN.district, TOWN.centre


def gauge(i: int, j: int) -> str:
    """Return the URN of the rain gauge in cell (i, j)."""
    return TOWN.sensor(i, j)


def places() -> list[dict[str, Any]]:
    """Return the places, parents first."""
    return TOWN.places()


def gauges() -> list[dict[str, Any]]:
    """Return one rain gauge per cell, located by its point."""
    return TOWN.sensor_entities()


def build(node: Node) -> None:
    """Create the city's places and gauges, each request on the next process (so every process writes some)."""
    for entity in TOWN.entities():
        r = node.rr.post("/api/v1/entities", json=entity)
        assert r.status_code == 201, f"creating {entity['id']} on p{node.which(r) + 1}: {r.status_code} {r.text}"


def known_everywhere(node: Node) -> None:
    """Wait until every process knows every place and gauge (its place index and directory are current)."""
    want = {e["id"] for e in places()}

    def check(client: Any) -> bool:
        tree = client.get("/api/v1/places").text
        missing = sorted(pid for pid in want if pid not in tree)
        assert not missing, f"the place index lacks {len(missing)} places, e.g. {missing[:3]}"
        # the history route answers 404 for an entity the process's directory does not know
        unknown = [g["id"] for g in gauges() if client.get(f"/api/v1/entities/{g['id']}/history").status_code != 200]
        assert not unknown, f"the directory lacks {len(unknown)} gauges, e.g. {unknown[:3]}"
        return True

    node.wait_all(check, timeout=15, what="the test city")
