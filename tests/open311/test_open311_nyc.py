"""Replay the real NYC 311 requests (/work/shared/data/nyc311) through Open311: each one becomes a routed case.

Mapping rule (documented here and in docs/open311.md):
- rows are de-duplicated on ID (the export repeats 450 rows);
- places: the NYC bounding box (lon -74.26…-73.70, lat 40.49…40.92) is mapped affinely onto the test city
  (lon 116.0…116.4, lat 39.8…40.0), clamped inside it, so neighbouring requests stay neighbours and the three
  rows with impossible coordinates land on the city's edge;
- speed: the suite replays every STRIDE-th request (default 10, 829 requests, a few seconds; CI=true: 1);
  CITYBRAIN_NYC_STRIDE=1 replays all 8,289 (about a minute on an idle machine);
- categories: the first keyword rule in SERVICE_RULES that the Title contains (case-insensitive) gives the
  service code; titles that match none go to E9901 "other", which has no routing rule (command centre).
"""

from __future__ import annotations

import asyncio
import csv
import os
from pathlib import Path

from cases.casecity import API_KEY, city

DATA = Path(os.environ.get("CITYBRAIN_SHARED", "/work/shared")) / "data" / "nyc311" / "NYC_20190522.csv"
NYC = (-74.26, 40.49, -73.70, 40.92)
CITY = (116.0, 39.8, 116.4, 40.0)
# CI replays every request; a developer's quick run replays every 10th unless told otherwise
STRIDE = int(os.environ.get("CITYBRAIN_NYC_STRIDE", "1" if os.environ.get("CI", "").lower() == "true" else "10"))
SERVICE_RULES: list[tuple[tuple[str, ...], str]] = [
    (("noise: construction", "jack hammer", "construction equipment"), "E0301"),
    (("noise",), "E0406"),
    (("graffiti", "postering", "defacement"), "E0201"),
    (("cave-in",), "E0501"),
    (("pothole", "street repair", "roads", "sidewalk repair", "wear & tear", "plate condition"), "C0210"),
    (("street light", "streetlight", "lamppost", "dayburning"), "C0110"),
    (("tree", "branch", "limb"), "C0402"),
    (("dumping", "disposal", "dump-out"), "E0102"),
    (("dirty", "litter", "street cleaning", "waste"), "E0104"),
    (("st name", "stop", "sign", "line/marking"), "C0203"),
    (("parking", "abandoned vehicle", "blocked"), "E0405"),
    (("driver", "vehicle complaint", "taxi"), "E0407"),
    (("vapors", "odor", "asbestos", "smoking", "ventilation"), "E0601"),
    (("sewage", "sewer", "catch basin"), "C0103"),
    (("hydrant",), "C0106"),
    (("water main", "water leak"), "E0502"),
]


def service_code(title: str) -> str:
    """Map an NYC request title onto a catalog service code."""
    low = title.lower()
    for words, code in SERVICE_RULES:
        if any(w in low for w in words):
            return code
    return "E9901"


def place(lat: float, lon: float) -> tuple[float, float]:
    """Map an NYC point onto the test city (clamped just inside its edge)."""
    fx = min(max((lon - NYC[0]) / (NYC[2] - NYC[0]), 0.0), 0.999)
    fy = min(max((lat - NYC[1]) / (NYC[3] - NYC[1]), 0.0), 0.999)
    return round(CITY[0] + fx * (CITY[2] - CITY[0]), 6), round(CITY[1] + fy * (CITY[3] - CITY[1]), 6)


def requests() -> list[dict[str, str]]:
    """Read the NYC export, one row per unique ID, as Open311 POST fields."""
    seen: dict[str, dict[str, str]] = {}
    with DATA.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["ID"] in seen:
                continue
            lon, lat = place(float(row["Latitude"]), float(row["Longitude"]))
            fields = {"api_key": API_KEY, "service_code": service_code(row["Title"]), "lat": str(lat),
                      "long": str(lon), "description": row["Description"][:4000], "device_id": "nyc-" + row["ID"]}
            if row["Address"]:
                fields["address_string"] = row["Address"]
            seen[row["ID"]] = fields
    return list(seen.values())


async def test_nyc_requests_become_routed_cases(tmp_path: Path) -> None:
    every = requests()
    assert len(every) == 8289
    rows = every[::STRIDE]
    async with city(tmp_path) as (rt, client, clock):
        sem = asyncio.Semaphore(64)

        async def send(fields: dict[str, str]) -> tuple[dict[str, str], str]:
            async with sem:
                r = await client.post("/open311/v2/requests.json", data=fields)
            assert r.status_code == 201, r.text
            return fields, r.json()[0]["service_request_id"]

        filed = await asyncio.gather(*(send(f) for f in rows))
        ids = [rid for _, rid in filed]
        assert len(set(ids)) == len(rows)
        stats = (await client.get("/api/v1/cases/stats")).json()
        assert stats["cases"] == len(rows) == stats["filed"]
        assert stats["routed_by_rule"] + stats["via_command_centre"] == len(rows)  # nothing falls in between
        expected_share = sum(1 for f in rows if f["service_code"] != "E9901") / len(rows)
        assert stats["routing_share"] == round(expected_share, 4) and stats["routing_share"] > 0.8
        print(f"\nNYC replay: {len(rows)} requests, routing share without the command centre "
              f"{stats['routing_share']:.1%}, {stats['via_command_centre']} to the command centre")
        for start in range(0, len(filed), 500):  # the Open311 view matches what was filed
            chunk = filed[start:start + 500]
            got = (await client.get("/open311/v2/requests.json",
                                    params={"service_request_id": ",".join(rid for _, rid in chunk)})).json()
            assert [g["service_request_id"] for g in got] == [rid for _, rid in chunk]
            for (fields, _), g in zip(chunk, got, strict=True):
                assert g["service_code"] == fields["service_code"] and g["description"] == fields["description"]
                assert (g["lat"], g["long"]) == (float(fields["lat"]), float(fields["long"]))
                assert g["address"] == fields.get("address_string", "") and g["status"] == "open"
                assert bool(g["agency_responsible"]) == (fields["service_code"] != "E9901")
