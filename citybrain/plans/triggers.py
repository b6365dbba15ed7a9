"""Judge plan conditions: recent observations per sensor, open alerts, risk levels; `for` holds by time."""

from __future__ import annotations

import fnmatch
from collections import deque
from typing import TYPE_CHECKING, Any

from citybrain.plans.spec import AlertCond, Condition, ObservationCond, RiskCond
from citybrain.ports import Ports
from citybrain.signals import RANK

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

KEEP = 26 * 3600.0  # seconds of history per sensor (a 24 h mean plus slack)
STEP = 60.0  # values within one minute share a bucket: at most KEEP / STEP buckets per sensor (constant memory)
FRESH = 2 * 3600.0  # a sensor's latest value counts while at most this old


class Tracker:
    """Recent numeric values per quantity and sensor, and the places each sensor lies in."""

    def __init__(self) -> None:
        self.series: dict[str, dict[str, deque[tuple[float, float]]]] = {}
        self.counts: dict[str, dict[str, deque[int]]] = {}
        self.last: dict[tuple[str, str], float] = {}
        self.areas: dict[str, frozenset[str]] = {}
        self.latest = 0.0  # newest observation time seen (epoch seconds)

    def add(self, entity: str, quantity: str, ts: float, value: float, areas: dict[str, str]) -> None:
        """Remember one observation; readings in the same STEP-long bucket are merged into their mean."""
        dq = self.series.setdefault(quantity, {}).setdefault(entity, deque())
        counts = self.counts.setdefault(quantity, {}).setdefault(entity, deque())
        bucket = ts - ts % STEP
        if dq and dq[-1][0] == bucket:
            n = counts[-1]
            dq[-1] = (bucket, (dq[-1][1] * n + value) / (n + 1))
            counts[-1] = n + 1
        elif not dq or dq[-1][0] < bucket:
            dq.append((bucket, value))
            counts.append(1)
        else:
            return  # older than what we hold: the trigger judges the present
        self.last[(quantity, entity)] = value
        while dq and dq[0][0] < ts - KEEP:
            counts.popleft()
            dq.popleft()
        if entity not in self.areas:
            self.areas[entity] = frozenset(areas.values())
        self.latest = max(self.latest, ts)

    def sensors(self, quantity: str, area: str | None) -> dict[str, deque[tuple[float, float]]]:
        """Return the series of a quantity from sensors inside `area` (all when None)."""
        got = self.series.get(quantity, {})
        return {e: s for e, s in got.items() if area is None or area in self.areas.get(e, ())}

    def stat(self, series: deque[tuple[float, float]], cond: ObservationCond, now: float) -> float | None:
        """Return a sensor's latest value (or its mean over the window), None when it is stale."""
        if not series or series[-1][0] < now - FRESH:
            return None
        if cond.stat == "value":
            return series[-1][1]
        vals = [v for t, v in series if t > now - cond.window]
        return sum(vals) / len(vals) if vals else None

    def rising(self, quantity: str, area: str | None) -> bool:
        """Tell whether the mean of the latest values rose since the previous observation time."""
        by_time: dict[float, list[float]] = {}
        for s in self.sensors(quantity, area).values():
            for t, v in list(s)[-2:]:
                by_time.setdefault(t, []).append(v)
        times = sorted(by_time)
        if len(times) < 2:
            return False
        last, prev = by_time[times[-1]], by_time[times[-2]]
        return sum(last) / len(last) > sum(prev) / len(prev)


class Judge:
    """Evaluates conditions against the tracker, the open alerts and the risk model; remembers holds."""

    def __init__(self, rt: CityBrain, tracker: Tracker) -> None:
        self.rt = rt
        self.tracker = tracker
        self.alerts: dict[str, dict[str, Any]] = {}  # open alerts: id -> {category, level, place}
        self.since: dict[str, float] = {}  # hold key -> time the condition started holding

    def on_alert(self, kind: str, data: dict[str, Any]) -> None:
        """Track open alerts from alert.raised / alert.escalated / alert.resolved events."""
        aid = str(data.get("alert_id", ""))
        if kind == "resolved" or data.get("status") == "resolved":
            self.alerts.pop(aid, None)
        else:
            self.alerts[aid] = {"category": str(data.get("category", "")), "place": data.get("place"),
                                "level": str(data.get("warningLevel") or data.get("severity") or "blue")}

    def holds(self, cond: Condition, area: str | None, now: float, key: str) -> tuple[bool, list[str]]:
        """Judge a condition for an area at `now`; `key` scopes its hold state (plan, run)."""
        if cond.mode == "leaf":
            ok, why = self._leaf(cond.leaf, area, now)
        else:
            results = [self.holds(p, area, now, key) for p in cond.parts]
            ok = any(r[0] for r in results) if cond.mode == "any" else all(r[0] for r in results)
            why = [w for r in results if r[0] == ok for w in r[1]]
        if cond.hold > 0:
            hk = f"{key}|{cond.path}"
            if not ok:
                self.since.pop(hk, None)
                return False, why
            start = self.since.setdefault(hk, now)
            if now - start < cond.hold:
                return False, [*why, f"holding for {int(now - start)} of {int(cond.hold)} s"]
        return ok, why

    def reset(self, key: str) -> None:
        """Forget the hold state of a plan or run."""
        for k in [k for k in self.since if k.startswith(f"{key}|")]:
            del self.since[k]

    def _leaf(self, leaf: Any, area: str | None, now: float) -> tuple[bool, list[str]]:
        if isinstance(leaf, ObservationCond):
            return self._observation(leaf, area, now)
        if isinstance(leaf, AlertCond):
            places = self.rt.ports.find(Ports.places)
            hits = [a for a in self.alerts.values()
                    if fnmatch.fnmatchcase(a["category"], leaf.category) and RANK.get(a["level"], 0) >= RANK[leaf.level]
                    and (area is None or places is None or (a["place"] and a["place"] in places
                                                              and places.within(a["place"], area)))]
            return len(hits) >= leaf.at_least, [f"{len(hits)} open {leaf.category} alerts at ≥ {leaf.level}"]
        if isinstance(leaf, RiskCond):
            risk = self.rt.ports.find(Ports.risk)
            if risk is None:
                return False, ["no risk model"]
            rows = risk.listing(level=leaf.type, minimum=leaf.level)
            places = self.rt.ports.find(Ports.places)
            rows = [r for r in rows if area is None or places is None or places.within(r["place"], area)]
            return len(rows) >= leaf.at_least, [f"{len(rows)} {leaf.type} places at risk ≥ {leaf.level}"]
        return False, []

    def _observation(self, c: ObservationCond, area: str | None, now: float) -> tuple[bool, list[str]]:
        series = self.tracker.sensors(c.quantity, area)
        stats = [v for s in series.values() if (v := self.tracker.stat(s, c, now)) is not None]
        if not stats:
            return False, [f"no fresh {c.quantity} data"]
        if c.above is not None:
            hits = [v for v in stats if v >= c.above]
            bound = f"≥ {c.above:g}"
        else:
            hits = [v for v in stats if v < (c.below or 0.0)]
            bound = f"< {c.below:g}"
        need = max(1, round(c.fraction * len(stats))) if c.fraction is not None else c.at_least
        ok = len(hits) >= need
        what = f"{c.quantity} {c.stat}{'' if c.stat == 'value' else f' over {int(c.window / 3600)}h'}"
        why = [f"{what} {bound} at {len(hits)} of {len(stats)} sensors (need {need}); "
               f"max {max(stats):.1f}, mean {sum(stats) / len(stats):.1f}"]
        if ok and c.rising:
            ok = self.tracker.rising(c.quantity, area)
            why.append("and rising" if ok else "but not rising")
        return ok, why
