"""What the demo city holds besides places: departments, resources, components, buildings, sensors and roads.

Every function returns entity payloads for the `entity.write` command ({id, type, attrs, place, location}),
placed in a cell of a generated Layout. Names are given as `name` (English) and `nameZh` (简体中文).
"""

from __future__ import annotations

import random
from typing import Any

from citybrain.demo import series
from citybrain.demo.layout import SEED, Area, Layout

# key -> (English name, Chinese name, short English, short Chinese, responsibilities)
ORGANISATIONS: dict[str, tuple[str, str, str, str, list[str]]] = {
    "transport": ("Transport Commission", "交通委员会", "Transport", "交通", ["traffic", "roads", "public-transport"]),
    "ecology": ("Ecology and Environment Bureau", "生态环境局", "Ecology & Environment", "生态环境",
                ["air-quality", "pollution"]),
    "emergency": ("Emergency Management Bureau", "应急管理局", "Emergency Management", "应急",
                  ["emergency", "rescue", "shelters"]),
    "health": ("Health Commission", "卫生健康委员会", "Health", "卫健", ["medical", "public-health"]),
    "urban": ("Urban Management Commission", "城市管理委员会", "Urban Management", "城管",
              ["streets", "drainage-maintenance", "city-appearance"]),
    "police": ("Public Security Bureau", "公安局", "Public Security", "公安", ["public-order", "traffic-control"]),
    "water": ("Water Authority", "水务局", "Water Authority", "水务", ["flooding", "drainage", "water-supply"]),
    "meteorology": ("Meteorological Service", "气象局", "Meteorology", "气象", ["weather", "warnings"]),
}

# (key, resourceType, English, Chinese, owner, capability, capacity, unitCode, district)
RESOURCES: list[tuple[str, str, str, str, str, list[str], int, str, str]] = [
    ("rescue-team-1", "team", "Emergency rescue team 1", "应急救援一队", "emergency", ["rescue", "flood-rescue"], 30,
     "IE", "chaoyang"),
    ("rescue-team-2", "team", "Emergency rescue team 2", "应急救援二队", "emergency", ["rescue", "flood-rescue"], 30,
     "IE", "haidian"),
    ("police-squad-1", "team", "Traffic police squad", "交警中队", "police", ["traffic-control", "cordon"], 20, "IE",
     "dongcheng"),
    ("urban-squad-1", "team", "Urban management squad", "城管执法队", "urban", ["street-clearance", "inspection"], 15,
     "IE", "xicheng"),
    ("pump-truck-1", "vehicle", "Drainage pump truck 1", "排水抢险车一号", "water", ["pumping", "drainage"], 3000, "MQH",
     "dongcheng"),
    ("pump-truck-2", "vehicle", "Drainage pump truck 2", "排水抢险车二号", "water", ["pumping", "drainage"], 3000, "MQH",
     "xicheng"),
    ("pump-truck-3", "vehicle", "Drainage pump truck 3", "排水抢险车三号", "water", ["pumping", "drainage"], 3000, "MQH",
     "shijingshan"),
    ("ambulance-1", "vehicle", "Ambulance 1", "救护车一号", "health", ["medical-transport"], 2, "IE", "dongcheng"),
    ("ambulance-2", "vehicle", "Ambulance 2", "救护车二号", "health", ["medical-transport"], 2, "IE", "haidian"),
    ("ambulance-3", "vehicle", "Ambulance 3", "救护车三号", "health", ["medical-transport"], 2, "IE", "shunyi"),
    ("bus-1", "vehicle", "Evacuation bus 1", "疏散客车一号", "transport", ["evacuation"], 50, "IE", "chaoyang"),
    ("bus-2", "vehicle", "Evacuation bus 2", "疏散客车二号", "transport", ["evacuation"], 50, "IE", "changping"),
    ("sprinkler-1", "vehicle", "Dust-suppression sprinkler", "洒水抑尘车", "urban", ["dust-suppression"], 10, "MTQ",
     "chaoyang"),
    ("weather-van-1", "vehicle", "Mobile weather station", "移动气象站", "meteorology", ["observation"], 1, "H87",
     "huairou"),
    ("shelter-1", "shelter", "Emergency shelter Dongcheng", "东城应急避难场所", "emergency", ["shelter"], 2000, "IE",
     "dongcheng"),
    ("shelter-2", "shelter", "Emergency shelter Chaoyang", "朝阳应急避难场所", "emergency", ["shelter"], 3000, "IE",
     "chaoyang"),
    ("shelter-3", "shelter", "Emergency shelter Changping", "昌平应急避难场所", "emergency", ["shelter"], 1500, "IE",
     "changping"),
    ("sandbags-1", "supply", "Sandbag depot", "防汛沙袋储备点", "water", ["flood-barrier"], 5000, "H87", "haidian"),
    ("masks-1", "supply", "N95 mask stock", "防护口罩储备", "health", ["respiratory-protection"], 20000, "H87",
     "xicheng"),
]

# (key, English, Chinese, district, scale of the I-94 series) — the first sensor carries the recorded values
TRAFFIC_SENSORS: list[tuple[str, str, str, str, float]] = [
    ("east-3rd-ring", "East 3rd Ring Road (demo)", "东三环（演示）", "chaoyang", 1.0),
    ("north-4th-ring", "North 4th Ring Road (demo)", "北四环（演示）", "haidian", 0.8),
    ("changan-avenue", "Chang'an Avenue (demo)", "长安街（演示）", "dongcheng", 0.6),
]


def org_id(key: str) -> str:
    """Return the URN of a department, e.g. urn:ngsi-ld:Organization:transport."""
    return f"urn:ngsi-ld:Organization:{key}"


def rel(target: str) -> dict[str, Any]:
    """Return a Relationship attribute pointing at `target`."""
    return {"type": "Relationship", "object": target}


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}


def _spot(layout: Layout, district: str, key: str, low_lying: bool = False) -> tuple[Area, dict[str, Any]]:
    """Pick a cell of the district (seeded by key) and a point well inside it."""
    rng = random.Random(f"{SEED}:{key}")
    prefix = f"urn:ngsi-ld:Subdistrict:{district}-"
    coms = {a.id for a in layout.of_type("Community") if a.parent and a.parent.startswith(prefix)}
    cells = [c for c in layout.of_type("Grid") if c.parent in coms] or [layout.of_type("Grid")[0]]
    if low_lying:
        cells = [c for c in cells if c.attrs.get("lowLying")] or cells
    cell = rng.choice(cells)
    x0, y0, x1, y1 = cell.bounds
    return cell, _point(x0 + (x1 - x0) * rng.uniform(0.2, 0.8), y0 + (y1 - y0) * rng.uniform(0.2, 0.8))


def organisations() -> list[dict[str, Any]]:
    """Return the eight city departments."""
    return [{"id": org_id(k), "type": "Organization", "attrs": {
        "name": en, "nameZh": zh, "alternateName": short, "alternateNameZh": short_zh, "responsibleFor": duties}}
        for k, (en, zh, short, short_zh, duties) in ORGANISATIONS.items()]


def resources(layout: Layout) -> list[dict[str, Any]]:
    """Return teams, vehicles, shelters and supplies, each owned by a department."""
    out = []
    for key, rtype, en, zh, owner, capability, capacity, unit, district in RESOURCES:
        cell, loc = _spot(layout, district, key)
        out.append({"id": f"urn:ngsi-ld:Resource:{key}", "type": "Resource", "place": cell.id, "location": loc,
                    "attrs": {"name": en, "nameZh": zh, "resourceType": rtype, "capability": capability,
                              "capacity": {"type": "Property", "value": capacity, "unitCode": unit},
                              "status": "available", "owner": rel(org_id(owner))}})
    return out


def components_and_buildings(layout: Layout) -> list[dict[str, Any]]:
    """Return a manhole and a hydrant per district, and critical buildings (hospitals, schools, care homes)."""
    out: list[dict[str, Any]] = []
    for d in layout.of_type("District"):
        key = d.id.rsplit(":", 1)[-1]
        zh = d.name_zh[:-1]
        rng = random.Random(f"{SEED}:{key}:buildings")
        things = [
            ("CityComponent", f"manhole-{key}", {"componentType": "manhole", "name": f"{d.name} manhole 1",
                                                  "nameZh": f"{zh}检查井1号", "status": "ok"}, True),
            ("CityComponent", f"hydrant-{key}", {"componentType": "hydrant", "name": f"{d.name} hydrant 1",
                                                  "nameZh": f"{zh}消防栓1号", "status": "ok"}, False),
            ("Building", f"hospital-{key}", {"category": ["hospital"], "name": f"{d.name} Hospital (demo)",
                                              "nameZh": f"{zh}医院（演示）", "critical": True,
                                              "beds": rng.randrange(300, 900, 50)}, False),
            ("Building", f"school-{key}", {"category": ["school"], "name": f"{d.name} No. 1 School (demo)",
                                            "nameZh": f"{zh}第一中学（演示）", "critical": True,
                                            "occupants": rng.randrange(800, 2400, 100)}, False),
        ]
        if key in ("dongcheng", "xicheng"):
            things.append(("Building", f"carehome-{key}", {
                "category": ["elderlyCare"], "name": f"{d.name} Elderly Care Home (demo)",
                "nameZh": f"{zh}养老院（演示）", "critical": True, "occupants": rng.randrange(80, 300, 10)}, True))
        for etype, ident, attrs, low in things:
            cell, loc = _spot(layout, key, ident, low_lying=low)
            out.append({"id": f"urn:ngsi-ld:{etype}:{ident}", "type": etype, "place": cell.id, "location": loc,
                        "attrs": attrs})
    return out


def station_sensors(layout: Layout) -> list[dict[str, Any]]:
    """Return, per air station, its AirQualityObserved and WeatherObserved entities and their two Devices."""
    out: list[dict[str, Any]] = []
    for s in series.stations():
        st, zh = s["station"], s["name_zh"]
        loc = _point(float(s["longitude"]), float(s["latitude"]))
        cell = layout.station_cell[st]
        for kind, etype, owner, props, en_kind, zh_kind in (
            ("aq", "AirQualityObserved", "ecology", ["pm25", "pm10", "so2", "no2", "co", "o3"], "air quality",
             "空气质量监测站"),
            ("wx", "WeatherObserved", "meteorology", ["temperature", "atmosphericPressure", "dewPoint",
                                                      "precipitation", "windSpeed", "windDirection"], "weather",
             "气象观测"),
        ):
            dev = f"urn:ngsi-ld:Device:{kind}-{st}"
            common = {"stationName": st, "stationType": s["station_type"], "owner": rel(org_id(owner))}
            out.append({"id": dev, "type": "Device", "place": cell, "location": loc, "attrs": {
                "name": f"{st} {en_kind} sensor", "nameZh": f"{zh}{zh_kind}设备", "deviceCategory": ["sensor"],
                "controlledProperty": props, "deviceState": "ok", **common}})
            out.append({"id": f"urn:ngsi-ld:{etype}:{st}", "type": etype, "place": cell, "location": loc, "attrs": {
                "name": f"{st} {en_kind}", "nameZh": f"{zh}{zh_kind}", "refDevice": rel(dev),
                "dataProvider": "Beijing MEMC / CMA via UCI (Zhang et al. 2017)", **common}})
    return out


def traffic_sensors(layout: Layout) -> list[dict[str, Any]]:
    """Return the demo roads, their TrafficFlowObserved sensors (carrying the I-94 series) and Devices."""
    out: list[dict[str, Any]] = []
    for key, en, zh, district, scale in TRAFFIC_SENSORS:
        cell, loc = _spot(layout, district, f"road-{key}")
        x0, y0, x1, y1 = cell.bounds
        lat = loc["coordinates"][1]
        road, dev = f"urn:ngsi-ld:Road:{key}", f"urn:ngsi-ld:Device:traffic-{key}"
        line = {"type": "LineString", "coordinates": [[round(x0, 6), lat], [round(x1, 6), lat]]}
        out.append({"id": road, "type": "Road", "place": cell.id, "location": line,
                    "attrs": {"name": en, "nameZh": zh, "roadClass": "primary"}})
        out.append({"id": dev, "type": "Device", "place": cell.id, "location": loc, "attrs": {
            "name": f"{en} loop detector", "nameZh": f"{zh}线圈检测器", "deviceCategory": ["sensor"],
            "controlledProperty": ["intensity"], "deviceState": "ok", "owner": rel(org_id("transport"))}})
        out.append({"id": f"urn:ngsi-ld:TrafficFlowObserved:{key}", "type": "TrafficFlowObserved",
                    "place": cell.id, "location": loc, "attrs": {
                        "name": en, "nameZh": zh, "refRoadSegment": rel(road), "refDevice": rel(dev),
                        "laneDirection": "forward", "demoScale": scale,
                        "dataProvider": "MnDOT I-94 ATR 301 via UCI (Hogue 2019), shifted onto the Beijing calendar"}})
    return out
