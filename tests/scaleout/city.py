"""A small test city written through the HTTP API of a node, round robin across its processes.

1 city, 2 districts (one subdistrict each), 4 communities, 16 grid cells (4 x 4, 2 x 2 cells per community),
and one rain gauge (WeatherObserved) in the middle of every cell.
"""

from __future__ import annotations

from typing import Any

from scaleout.node import Node

CITY = "urn:ngsi-ld:City:so"
LON0, LAT0, DLON, DLAT = 116.0, 39.8, 0.1, 0.05  # cell (i, j): lon LON0 + i*DLON, lat LAT0 + j*DLAT
WHOLE = {"type": "Polygon", "coordinates": [[[116.0, 39.8], [116.4, 39.8], [116.4, 40.0], [116.0, 40.0],
                                             [116.0, 39.8]]]}


def box(i: int, j: int) -> dict[str, Any]:
    """Return the polygon of grid cell (i, j)."""
    x, y = LON0 + i * DLON, LAT0 + j * DLAT
    return {"type": "Polygon", "coordinates": [[[x, y], [x + DLON, y], [x + DLON, y + DLAT], [x, y + DLAT], [x, y]]]}


def cell(i: int, j: int) -> str:
    """Return the URN of grid cell (i, j)."""
    return f"urn:ngsi-ld:Grid:g{i}{j}"


def community(i: int, j: int) -> str:
    """Return the community a cell is in."""
    return f"urn:ngsi-ld:Community:m{1 + i // 2 + 2 * (j // 2)}"


def district(i: int, j: int) -> str:
    """Return the district a cell is in (communities m1, m2 in d1; m3, m4 in d2)."""
    return f"urn:ngsi-ld:District:d{1 + j // 2}"


def centre(i: int, j: int) -> tuple[float, float]:
    """Return (lon, lat) of the middle of cell (i, j)."""
    return LON0 + (i + 0.5) * DLON, LAT0 + (j + 0.5) * DLAT


def gauge(i: int, j: int) -> str:
    """Return the URN of the rain gauge in cell (i, j)."""
    return f"urn:ngsi-ld:WeatherObserved:rain-{i}{j}"


def places() -> list[dict[str, Any]]:
    """Return the places, parents first."""
    out: list[dict[str, Any]] = [{"id": CITY, "type": "City", "location": WHOLE}]
    for d in (1, 2):
        out.append({"id": f"urn:ngsi-ld:District:d{d}", "type": "District", "place": CITY, "location": WHOLE})
        out.append({"id": f"urn:ngsi-ld:Subdistrict:s{d}", "type": "Subdistrict",
                    "place": f"urn:ngsi-ld:District:d{d}", "location": WHOLE})
    for k in (1, 2, 3, 4):
        out.append({"id": f"urn:ngsi-ld:Community:m{k}", "type": "Community",
                    "place": f"urn:ngsi-ld:Subdistrict:s{1 + (k - 1) // 2}", "location": WHOLE})
    for i in range(4):
        for j in range(4):
            out.append({"id": cell(i, j), "type": "Grid", "place": community(i, j), "location": box(i, j),
                        "attrs": {"population": 5000}})
    return out


def gauges() -> list[dict[str, Any]]:
    """Return one rain gauge per cell, located by its point."""
    out = []
    for i in range(4):
        for j in range(4):
            lon, lat = centre(i, j)
            out.append({"id": gauge(i, j), "type": "WeatherObserved", "place": cell(i, j),
                        "location": {"type": "Point", "coordinates": [lon, lat]}})
    return out


def build(node: Node) -> None:
    """Create the city's places and gauges, each request on the next process (so every process writes some)."""
    for entity in places() + gauges():
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
