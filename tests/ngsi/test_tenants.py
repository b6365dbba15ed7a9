"""NGSILD-Tenant on the SQLite store: each tenant is the file <store>.<tenant>.db beside the main one.

(PostgreSQL tenants, one schema each, are tested in test_tenants_pg.py.)
"""

from __future__ import annotations

from pathlib import Path

import httpx
from ngsi_support import BASE, LD, LINK, ld, vehicle

from citybrain.runtime import CityBrain

V1 = "urn:ngsi-ld:Vehicle:V1"


def th(tenant: str | None) -> dict[str, str]:
    return {"Link": LINK, **({"NGSILD-Tenant": tenant} if tenant else {})}


async def test_sqlite_tenants_are_separate_files(client: httpx.AsyncClient, runtime: CityBrain) -> None:
    main = Path(runtime.settings.store)
    assert not (main.parent / f"{main.stem}.acme{main.suffix}").exists()
    r = await client.get(f"{BASE}/entities", params={"type": "Vehicle"}, headers=th("acme"))
    assert r.status_code == 404  # reading does not create a tenant
    for tenant, speed in (("acme", 10), ("Other-1", 20)):
        r = await client.post(f"{BASE}/entities", content=ld(vehicle(1, speed)), headers={**LD, "NGSILD-Tenant": tenant})
        assert r.status_code == 201, r.text
    body = {"id": V1, "type": "Vehicle", "speed": [{"type": "Property", "value": 11, "observedAt": "2024-01-01T01:00:00Z"}]}
    r = await client.post(f"{BASE}/temporal/entities", content=ld(body), headers={**LD, "NGSILD-Tenant": "acme"})
    assert r.status_code == 204, r.text
    assert (main.parent / f"{main.stem}.acme{main.suffix}").exists()
    assert (main.parent / f"{main.stem}.Other-1{main.suffix}").exists()
    got = {}
    for tenant in ("acme", "Other-1", None):
        r = await client.get(f"{BASE}/temporal/entities/{V1}", params={"attrs": "speed"}, headers=th(tenant))
        got[tenant] = [i["value"] for i in r.json()["speed"]] if r.status_code == 200 else r.status_code
    assert got == {"acme": [10, 11], "Other-1": [20], None: 404}
