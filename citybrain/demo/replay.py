"""Replay the recorded series through the normal ingest path, paced by the runtime clock.

One batch per recorded hour: 12 AirQualityObserved items (µg/m³), one item per weather attribute of the 12
WeatherObserved sensors (each with its unit) and the demo traffic sensors. `observedAt` is the real
recorded time (Beijing local, converted to UTC). Missing values are left out, never sent as zero.
At speed 600 one recorded hour is submitted every 6 real seconds; speed <= 0 or inf means no pacing.
Gaps between the extract's episodes (and the jump back when looping) take one recorded hour.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from citybrain.clock import parse_time
from citybrain.demo import catalog, series

if TYPE_CHECKING:
    from citybrain.obs import IngestReport
    from citybrain.runtime import CityBrain

SOURCE = "demo-replay"
HOUR = timedelta(hours=1)
UNPACED_HOURS = 8  # hours submitted together when replaying without pacing


def hour_batches(start: str | None = None, end: str | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Return (observedAt, ingest items) per recorded hour in [start, end), oldest first."""
    by_time: dict[str, list[dict[str, Any]]] = {}
    for rec in series.read_air(start, end):
        items = by_time.setdefault(rec.observed_at, [])
        if rec.air:
            items.append({"entity": f"urn:ngsi-ld:AirQualityObserved:{rec.station}", "observedAt": rec.observed_at,
                          "values": rec.air, "unitCode": "GQ"})
        wid = f"urn:ngsi-ld:WeatherObserved:{rec.station}"
        items.extend({"entity": wid, "attr": attr, "value": value, "observedAt": rec.observed_at,
                      "unitCode": series.UNITS[attr]} for attr, value in rec.weather.items())
    for t in series.read_traffic(start, end):
        if t.intensity is None:
            continue
        items = by_time.setdefault(t.observed_at, [])
        for key, *_, scale in catalog.TRAFFIC_SENSORS:
            items.append({"entity": f"urn:ngsi-ld:TrafficFlowObserved:{key}", "attr": "intensity",
                          "value": round(t.intensity * scale), "observedAt": t.observed_at, "unitCode": "E50"})
    return [(when, by_time[when]) for when in sorted(by_time) if by_time[when]]


class Replay:
    """Submits the recorded hours in time order at `speed`× real time, optionally looping."""

    def __init__(self, rt: CityBrain, speed: float = 600.0, start: str | None = "2016-07-15T00:00:00Z",
                 end: str | None = None, loop: bool = True) -> None:
        self.rt = rt
        self.speed = speed
        self.start = start
        self.end = end
        self.loop = loop
        self.submitted = 0  # observations (attribute values) stored
        self.by_type: Counter[str] = Counter()
        self.rejected = 0
        self.batches = 0
        self.loops = 0  # completed passes over the range
        self.sim_time: str | None = None  # observedAt of the last submitted hour
        self.first_time: str | None = None
        self.last_report: IngestReport | None = None
        self._hours: list[tuple[str, list[dict[str, Any]]]] | None = None
        self._pos = 0
        self._stopped = False

    @property
    def hours(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The recorded hours of the range (read once, lazily)."""
        if self._hours is None:
            self._hours = hour_batches(self.start, self.end)
            if not self._hours:
                raise ValueError(f"no recorded data between {self.start} and {self.end}")
        return self._hours

    @property
    def done(self) -> bool:
        """Tell whether a non-looping replay has submitted its last hour (or was stopped)."""
        return self._stopped or (not self.loop and self._hours is not None and self._pos >= len(self._hours))

    def next_time(self) -> str | None:
        """Return the observedAt of the hour step() would submit next, or None when done."""
        if self.done:
            return None
        return self.hours[self._pos % len(self.hours)][0]

    async def step(self) -> IngestReport | None:
        """Submit the next recorded hour now, without pacing; return the ingest report (None when done)."""
        reports = await self.step_many(1)
        return reports[0] if reports else None

    async def step_many(self, n: int) -> list[IngestReport]:
        """Submit the next `n` recorded hours concurrently (one group commit); return their reports in order."""
        hours = self.hours
        picked: list[tuple[str, list[dict[str, Any]]]] = []
        while len(picked) < n and not self.done:
            if self._pos >= len(hours):
                self._pos = 0
                self.loops += 1
            if self.batches == 0 and not picked:
                self._check_sensors(hours[self._pos][1])
            picked.append(hours[self._pos])
            self._pos += 1
            if not self.loop and self._pos >= len(hours):
                self.loops += 1
        ingest = self.rt.ports.ingest
        ctx = self.rt.context(actor="system:demo")
        reports: list[IngestReport] = list(await asyncio.gather(*(ingest.submit(items, ctx, SOURCE)
                                                                  for _, items in picked)))
        for (when, _), report in zip(picked, reports, strict=True):
            self.batches += 1
            self.submitted += report.stored
            self.by_type.update(report.by_type)
            self.rejected += report.rejected_count
            self.sim_time = when
            self.first_time = self.first_time or when
            self.last_report = report
        return reports

    def _check_sensors(self, items: list[dict[str, Any]]) -> None:
        known = self.rt.ports.directory.types
        if not any(item["entity"] in known for item in items):
            raise RuntimeError("the demo sensors do not exist: call load_demo_city(rt) before replaying")

    async def run(self, duration: float | None = None) -> None:
        """Replay paced by rt.clock until done, stopped, or `duration` clock seconds have passed."""
        clock = self.rt.clock
        if not self.hours:  # read the extract before the clock starts
            return
        began = clock.monotonic()
        deadline = math.inf if duration is None else began + duration
        paced = 0 < self.speed < math.inf
        due: float | None = None
        prev: datetime | None = None
        while not self.done:
            nxt = self.next_time()
            if nxt is None:
                break
            sim = parse_time(nxt)
            if paced:
                if due is None or prev is None:
                    due = clock.monotonic()
                else:  # a jump between episodes, or the loop back, takes one recorded hour
                    gap = sim - prev if timedelta(0) < sim - prev <= 6 * HOUR else HOUR
                    due += gap.total_seconds() / self.speed
                wait = min(due, deadline) - clock.monotonic()
                if wait > 0:
                    await clock.sleep(wait)
            if clock.monotonic() >= deadline or self._stopped:
                break
            if paced:
                await self.step()
            else:
                await self.step_many(UNPACED_HOURS)
                await asyncio.sleep(0)  # let other tasks run between unpaced batches
            prev = sim

    def stop(self) -> None:
        """Ask a running replay to stop before its next hour."""
        self._stopped = True

    def summary(self) -> dict[str, Any]:
        """Return counters: observations, by_type, simulated_from/to, rejected, batches, loops."""
        return {"observations": self.submitted, "by_type": dict(self.by_type), "simulated_from": self.first_time,
                "simulated_to": self.sim_time, "rejected": self.rejected, "batches": self.batches,
                "loops": self.loops}


async def run_demo(rt: CityBrain, duration: float, speed: float = 600.0, start: str | None = None,
                   size: str = "small") -> dict[str, Any]:
    """Load the demo city (if needed) and replay for `duration` real seconds; return the replay summary."""
    from citybrain.demo.city import load_demo_city

    city = await load_demo_city(rt, size)
    replay = Replay(rt, speed=speed, start=start or "2016-07-15T00:00:00Z", loop=True)
    await replay.run(duration)
    return {**replay.summary(), "city": city.city_id, "entities": sum(city.counts.values()),
            "load_seconds": round(city.seconds, 3)}
