"""The core HTTP API: introspection, entities, observations, errors as problem details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from citybrain.api import create_app
from citybrain.clock import FakeClock
from citybrain.config import Settings
from citybrain.runtime import CityBrain

CELL = {"type": "Polygon", "coordinates": [[[116.0, 39.0], [116.5, 39.0], [116.5, 39.5], [116.0, 39.5], [116.0, 39.0]]]}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(store=str(tmp_path / "api.db"), bus="memory", parent="nats://user:s3cret@parent:4222")
    rt = CityBrain(settings, clock=FakeClock())
    await rt.start()
    app = create_app(rt, manage_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        for pid, ptype, parent in (("urn:ngsi-ld:City:c", "City", None), ("urn:ngsi-ld:District:d", "District", "urn:ngsi-ld:City:c"),
                                   ("urn:ngsi-ld:Subdistrict:s", "Subdistrict", "urn:ngsi-ld:District:d"),
                                   ("urn:ngsi-ld:Community:m", "Community", "urn:ngsi-ld:Subdistrict:s"),
                                   ("urn:ngsi-ld:Grid:g", "Grid", "urn:ngsi-ld:Community:m")):
            r = await c.post("/api/v1/entities", json={"id": pid, "type": ptype, "place": parent, "location": CELL})
            assert r.status_code == 201, r.text
        yield c
    await rt.stop()


async def test_introspection(client: httpx.AsyncClient) -> None:
    health = await client.get("/-/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (await client.get("/-/version")).json()["citybrain"]
    settings = (await client.get("/-/settings")).json()
    assert "s3cret" not in str(settings) and settings["settings"]["parent"] == "nats://user:***@parent:4222"
    assert set(settings["help"]) == set(settings["settings"])  # every setting is documented
    names = {c["name"] for c in (await client.get("/-/commands")).json()}
    assert {"entity.write", "observations.ingest"} <= names


async def test_entities_observations_history(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/entities", json={
        "id": "urn:ngsi-ld:WeatherObserved:w1", "type": "WeatherObserved",
        "location": {"type": "Point", "coordinates": [116.1, 39.1]}})
    assert r.status_code == 201
    r = await client.post("/api/v1/observations", json=[
        {"entity": "urn:ngsi-ld:WeatherObserved:w1", "observedAt": "2016-07-20T00:00:00Z", "values": {"precipitation": 12.5}},
        {"entity": "urn:ngsi-ld:WeatherObserved:w1", "observedAt": "2016-07-20T01:00:00Z", "values": {"precipitation": 30}},
    ])
    assert r.status_code == 200 and r.json()["stored"] == 2
    got = (await client.get("/api/v1/entities/urn:ngsi-ld:WeatherObserved:w1")).json()
    assert got["precipitation"]["value"] == 30 and got["place"] == "urn:ngsi-ld:Grid:g"
    hist = (await client.get("/api/v1/entities/urn:ngsi-ld:WeatherObserved:w1/history", params={"attr": "precipitation"})).json()
    assert [h["value"] for h in hist] == [12.5, 30]
    in_place = await client.get("/api/v1/entities", params={"place": "urn:ngsi-ld:District:d", "type": "WeatherObserved"})
    assert [e["id"] for e in in_place.json()] == ["urn:ngsi-ld:WeatherObserved:w1"]
    tree = (await client.get("/api/v1/places")).json()
    assert tree[0]["id"] == "urn:ngsi-ld:City:c" and tree[0]["children"][0]["id"] == "urn:ngsi-ld:District:d"


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("post", "/api/v1/entities", {"id": "urn:ngsi-ld:Grid:x", "type": "Grid", "place": "urn:ngsi-ld:Community:none"}, 400, "place"),
    ("post", "/api/v1/entities", {"id": "nope", "type": "Device"}, 400, "id"),
    ("post", "/api/v1/entities", {"id": "urn:ngsi-ld:City:c", "type": "City"}, 409, "id"),
    ("post", "/api/v1/observations", [{"entity": "urn:ngsi-ld:Device:ghost", "attr": "x", "value": 1,
                                       "observedAt": "2016-01-01T00:00:00Z"}], 400, None),
    ("post", "/api/v1/observations", [{"entity": "urn:ngsi-ld:Grid:g", "attr": "x", "value": 1,
                                       "observedAt": "yesterday"}], 400, None),
    ("get", "/api/v1/entities/urn:ngsi-ld:Device:none", None, 404, "entity_id"),
    ("get", "/api/v1/places/urn:ngsi-ld:Grid:none", None, 404, "place_id"),
    ("post", "/api/v1/commands/no.such", {}, 404, "command"),
    ("patch", "/api/v1/entities/urn:ngsi-ld:Grid:g/attrs", {"bad name": 1}, 400, "bad name"),
])
async def test_bad_input_is_a_problem(client: httpx.AsyncClient, method: str, path: str, body: object,
                                      status: int, field: str | None) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") or status in (400,) and "rejected" in r.json()
    if field is not None:
        assert r.json()["field"] == field


async def test_invalid_json_and_oversize(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/observations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = await client.post("/api/v1/observations", content=b"[" + b" " * (9 * 1024 * 1024) + b"]",
                          headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert (await client.get("/-/health")).status_code == 200


async def test_health_answers_quickly_when_a_dependency_hangs(client: httpx.AsyncClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import time

    from citybrain.api import introspection

    rt = client._transport.app.state.rt  # type: ignore[attr-defined]

    async def hang() -> None:
        await asyncio.sleep(60)  # a PostgreSQL that stopped answering holds the pool for its timeout

    monkeypatch.setattr(introspection, "PING_TIMEOUT", 0.3)
    monkeypatch.setattr(rt.store, "ping", hang)
    t0 = time.perf_counter()
    r = await client.get("/-/health")
    assert time.perf_counter() - t0 < 2
    assert r.status_code == 503
    assert r.json()["checks"]["store"] == {"status": "down", "detail": "no answer within 0.3 s"}
    assert r.json()["checks"]["bus"]["status"] == "ok"


async def test_dead_letters_replay_as_a_command_once_the_sensor_exists(client: httpx.AsyncClient) -> None:
    """A reading for a sensor not provisioned yet is dead-lettered; once the sensor exists, deadletters.replay
    stores it, marks the letter replayed and is recorded as an event with the letters it replayed."""
    sensor = "urn:ngsi-ld:AirQualityObserved:later"
    r = await client.post("/api/v1/observations", json=[{"entity": sensor, "attr": "pm25", "value": 42,
                                                          "observedAt": "2016-07-20T08:00:00Z"}])
    assert r.status_code == 400 and r.json()["stored"] == 0, r.text  # all rejected: kept as a dead letter
    letters = (await client.get("/api/v1/deadletters")).json()
    assert len(letters) == 1 and "unknown sensor" in letters[0]["reason"]
    r = await client.post("/api/v1/deadletters/replay")
    assert r.json() == {"replayed": 0, "still_failing": 1}  # the sensor is still unknown: the letter stays
    r = await client.post("/api/v1/entities", json={"id": sensor, "type": "AirQualityObserved",
                                                    "place": "urn:ngsi-ld:Grid:g"})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/deadletters/replay")
    assert r.status_code == 200 and r.json() == {"replayed": 1, "still_failing": 0}, r.text
    assert (await client.get("/api/v1/deadletters")).json() == []
    assert len((await client.get("/api/v1/deadletters", params={"all": True})).json()) == 1
    history = (await client.get(f"/api/v1/entities/{sensor}/history", params={"attr": "pm25"})).json()
    assert [h["value"] for h in history] == [42]
    events = (await client.get("/api/v1/events", params={"type": "command.deadletters.replay"})).json()
    replays = [e for e in events if e["type"] == "command.deadletters.replay"]
    assert [e["data"]["replayed"] for e in replays] == [0, 1]
    assert replays[-1]["data"]["letters"] == [letters[0]["seq"]]
    assert (await client.post("/api/v1/deadletters/replay")).json() == {"replayed": 0, "still_failing": 0}
    r = await client.post("/api/v1/commands/deadletters.replay", json={"limit": 0})
    assert r.status_code == 400 and "limit" in r.text
