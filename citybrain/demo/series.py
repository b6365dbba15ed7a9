"""The recorded series shipped with the demo: Beijing air/weather and one traffic series, read by time range.

Times in the files are Beijing local time (China Standard Time, UTC+08:00, no daylight saving). Every
reader here returns `observed_at` in citybrain's canonical UTC form. Missing values (`NA`) are left out.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from citybrain.clock import iso, parse_time

DATA_DIR = Path(__file__).parent / "data"
AIR_FILE = DATA_DIR / "air.csv.gz"
TRAFFIC_FILE = DATA_DIR / "traffic.csv.gz"
STATIONS_FILE = DATA_DIR / "stations.csv"
CST = timezone(timedelta(hours=8), "CST")
LOCAL_FORMAT = "%Y-%m-%d %H:%M"

# Episodes in the extract, as Beijing local dates [first day, day after the last day).
WINDOWS: dict[str, tuple[str, str]] = {
    "fireworks": ("2016-02-01", "2016-02-15"),  # Spring Festival 2016: fireworks spike just after 02-08 00:00
    "rainstorm": ("2016-07-06", "2016-08-03"),  # the 19-20 July 2016 rainstorm (peak 20 July 09:00-14:00)
    "smog": ("2016-12-01", "2017-01-08"),  # red alert 16-21 Dec 2016, then the New-Year 2017 episode
}
# Key moments inside the windows (Beijing local time), for scenarios and tests.
MOMENTS: dict[str, str] = {
    "fireworks_peak": "2016-02-08 01:00",
    "rain_start": "2016-07-19 00:00",
    "rain_peak": "2016-07-20 12:00",
    "rain_end": "2016-07-21 00:00",
    "red_alert_start": "2016-12-16 20:00",
    "red_alert_end": "2016-12-21 24:00",
}

# UCI column -> (sensor kind, citybrain attribute, UN/CEFACT unit code)
AIR_COLUMNS: dict[str, tuple[str, str, str]] = {
    "PM2.5": ("air", "pm25", "GQ"),
    "PM10": ("air", "pm10", "GQ"),
    "SO2": ("air", "so2", "GQ"),
    "NO2": ("air", "no2", "GQ"),
    "CO": ("air", "co", "GQ"),
    "O3": ("air", "o3", "GQ"),
    "TEMP": ("weather", "temperature", "CEL"),
    "PRES": ("weather", "atmosphericPressure", "A97"),
    "DEWP": ("weather", "dewPoint", "CEL"),
    "RAIN": ("weather", "precipitation", "MMT"),
    "WSPM": ("weather", "windSpeed", "MTS"),
    "wd": ("weather", "windDirection", "DD"),  # 16-point compass converted to degrees
}
COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
UNITS: dict[str, str] = {attr: unit for _, attr, unit in AIR_COLUMNS.values()} | {"intensity": "E50"}

# I-94 source hour + TRAFFIC_SHIFT = Beijing calendar hour (52 weeks back: same weekday, same wall-clock hour)
TRAFFIC_SHIFT = timedelta(days=-364)


@dataclass(frozen=True, slots=True)
class AirRecord:
    """One station-hour: air-quality and weather values (missing ones left out)."""

    station: str
    local_time: str  # "YYYY-MM-DD HH:MM", Beijing local time, as recorded
    observed_at: str  # canonical UTC ISO 8601
    air: dict[str, float] = field(default_factory=dict)
    weather: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrafficRecord:
    """One hour of the I-94 series on the Beijing calendar."""

    local_time: str  # shifted onto the Beijing calendar, Beijing local time
    observed_at: str  # canonical UTC ISO 8601
    source_time: str  # the original I-94 hour (US Central local time)
    intensity: int | None  # vehicles per hour; None for the source's gap hours


def local_to_utc(local: str) -> datetime:
    """Convert a Beijing local 'YYYY-MM-DD HH:MM' (hour 24 allowed) to an aware UTC datetime."""
    day, _, hm = local.partition(" ")
    hour, minute = (int(x) for x in (hm or "00:00").split(":"))
    base = datetime(int(day[:4]), int(day[5:7]), int(day[8:10]), tzinfo=CST)
    return (base + timedelta(hours=hour, minutes=minute)).astimezone(UTC)


@lru_cache(maxsize=8192)
def local_iso(local: str) -> str:
    """Convert a Beijing local 'YYYY-MM-DD HH:MM' to canonical UTC ISO 8601 (cached: hours repeat)."""
    return iso(local_to_utc(local))


def to_utc(when: str | datetime) -> datetime:
    """Read a bound: aware datetimes and ISO strings with a zone as given; naive ones as Beijing local time."""
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=CST)).astimezone(UTC)
    text = when.strip()
    if text.endswith(("Z", "z")) or "+" in text[10:] or "-" in text[10:]:
        return parse_time(text, "time")
    return local_to_utc(text.replace("T", " "))


def window(name: str) -> tuple[str, str]:
    """Return an episode's [start, end) in canonical UTC (see WINDOWS)."""
    first, after = WINDOWS[name]
    return iso(local_to_utc(first)), iso(local_to_utc(after))


def degrees(compass: str) -> float:
    """Convert a 16-point compass direction (N, NNE, …) to degrees clockwise from north."""
    return COMPASS.index(compass) * 22.5


def _number(text: str) -> float | None:
    return None if text in ("", "NA") else float(text)


def _open(path: Path) -> io.TextIOWrapper:
    return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")


@lru_cache(maxsize=1)
def _air_all() -> tuple[AirRecord, ...]:
    out: list[AirRecord] = []
    with _open(AIR_FILE) as fh:
        reader = csv.reader(fh)
        header = next(reader)
        columns = [(header.index(col), kind == "air", attr, col == "wd") for col, (kind, attr, _) in AIR_COLUMNS.items()]
        t_col, s_col = header.index("local_time"), header.index("station")
        for row in reader:
            air: dict[str, float] = {}
            weather: dict[str, float] = {}
            for index, is_air, attr, compass in columns:
                text = row[index]
                if text == "NA" or not text:
                    continue
                value = degrees(text) if compass else float(text)
                (air if is_air else weather)[attr] = value
            local = row[t_col]
            out.append(AirRecord(row[s_col], local, local_iso(local), air, weather))
    out.sort(key=lambda r: (r.observed_at, r.station))
    return tuple(out)


@lru_cache(maxsize=1)
def _traffic_all() -> tuple[TrafficRecord, ...]:
    out: list[TrafficRecord] = []
    with _open(TRAFFIC_FILE) as fh:
        for row in csv.DictReader(fh):
            volume = _number(row["traffic_volume"])
            local = row["local_time"]
            out.append(TrafficRecord(local, local_iso(local), row["source_time"],
                                     None if volume is None else int(volume)))
    out.sort(key=lambda r: r.observed_at)
    return tuple(out)


def _bounds(start: str | datetime | None, end: str | datetime | None) -> tuple[str, str]:
    lo = iso(to_utc(start)) if start is not None else ""
    hi = iso(to_utc(end)) if end is not None else "~"
    return lo, hi


def read_air(start: str | datetime | None = None, end: str | datetime | None = None,
             stations: list[str] | None = None) -> list[AirRecord]:
    """Return station-hours with start <= observed_at < end, in time order (then by station)."""
    lo, hi = _bounds(start, end)
    wanted = set(stations) if stations else None
    return [r for r in _air_all() if lo <= r.observed_at < hi and (wanted is None or r.station in wanted)]


def read_traffic(start: str | datetime | None = None, end: str | datetime | None = None) -> list[TrafficRecord]:
    """Return traffic hours with start <= observed_at < end, in time order (gap hours included)."""
    lo, hi = _bounds(start, end)
    return [r for r in _traffic_all() if lo <= r.observed_at < hi]


def stations() -> list[dict[str, str]]:
    """Return the 12 stations (station, name_zh, latitude, longitude, district, district_zh, station_type)."""
    with STATIONS_FILE.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
