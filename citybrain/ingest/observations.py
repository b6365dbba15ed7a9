"""The observation ingest path shared by HTTP, MQTT, replay and federation.

validate → one store batch (state + history, committed) → acknowledge → publish on the bus.
Anything that cannot be used is rejected with the field that is wrong and kept as a dead letter.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from citybrain.clock import normalise_time
from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import ValidationError
from citybrain.model.entity import ObservationRow
from citybrain.obs import IngestReport, ObservationBatch, Rejection, encode_rows, obs_subject
from citybrain.store import WriteObservations

if TYPE_CHECKING:
    from citybrain.model.commands import Directory
    from citybrain.runtime import CityBrain


_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = (int, float)
_good_attrs: set[str] = set()  # attribute names that passed _ATTR (bounded)
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _observed_at(value: Any) -> str:
    """normalise_time, with a fast path for a timestamp already in canonical form (the usual case)."""
    if type(value) is str and len(value) == 24 and _CANONICAL.fullmatch(value):
        try:
            datetime.fromisoformat(value)  # a real date and time (not 2026-02-30 or 25:00)
            return value
        except ValueError:
            pass
    return normalise_time(value, "observedAt")


def _check_value(value: Any, field: str) -> Any:
    if value is None:
        raise ValidationError(f"{field}: value is missing (null)", field=field)
    if isinstance(value, bool):
        return value
    if isinstance(value, _NUMBER):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{field}: {value} is not a finite number", field=field)
        return value
    if isinstance(value, str):
        if len(value) > 10_000:
            raise ValidationError(f"{field}: text value longer than 10000 characters", field=field)
        return value
    if isinstance(value, dict | list):
        return value
    raise ValidationError(f"{field}: unsupported value {value!r}", field=field)


def _unknown_sensors(items: list[Any], rejected: list[Rejection]) -> list[str]:
    """Return the entity ids of the items rejected because the directory did not know them."""
    out: list[str] = []
    for r in rejected:
        item = items[r.index]
        if r.field == "entity" and isinstance(item, dict) and isinstance(entity := item.get("entity"), str) and entity:
            out.append(entity)
    return out


class Ingest:
    """Validates and stores observations; keeps counts for summaries and metrics."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt
        self.directory: Directory = rt.ports.directory
        self.stored_by_type: Counter[str] = Counter()
        self.rejected = 0
        self.batches = 0
        self._partitions: dict[str, int] = {}  # grid cell -> partition (places do not move between communities)

    def parse(self, items: list[Any]) -> tuple[list[ObservationRow], list[Rejection], Counter[str]]:
        """Turn raw items into rows; return rows, rejections and counts per entity type."""
        rows: list[ObservationRow] = []
        rejected: list[Rejection] = []
        by_type: Counter[str] = Counter()
        types = self.directory.types
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ValidationError("observation: expected a JSON object", field="observation")
                entity_id = item.get("entity")
                if not isinstance(entity_id, str) or not entity_id:
                    raise ValidationError("entity: missing sensor/entity id", field="entity")
                etype = types.get(entity_id)
                if etype is None:
                    raise ValidationError(
                        f"entity: unknown sensor {entity_id} (provision it before sending observations)",
                        field="entity",
                    )
                observed = item.get("observedAt")
                if observed is None:
                    raise ValidationError("observedAt: missing timestamp", field="observedAt")
                observed_at = _observed_at(observed)
                unit = item.get("unitCode")
                if unit is not None and not isinstance(unit, str):
                    raise ValidationError("unitCode: expected a string", field="unitCode")
                if "values" in item:
                    values = item["values"]
                    if not isinstance(values, dict) or not values:
                        raise ValidationError("values: expected an object of attribute values", field="values")
                    new = []
                    for attr, value in values.items():
                        if attr not in _good_attrs:
                            if not _ATTR.match(attr):
                                raise ValidationError(f"values.{attr}: not a valid attribute name",
                                                      field=f"values.{attr}")
                            if len(_good_attrs) < 10_000:
                                _good_attrs.add(attr)
                        if type(value) is not float or not math.isfinite(value):  # floats: the usual case
                            value = _check_value(value, f"values.{attr}")
                        new.append(ObservationRow(entity_id, attr, observed_at, value, unit))
                    rows.extend(new)
                    by_type[etype] += len(new)
                else:
                    attr = item.get("attr")
                    if not isinstance(attr, str) or not _ATTR.match(attr):
                        raise ValidationError(f"attr: {attr!r} is not a valid attribute name", field="attr")
                    rows.append(ObservationRow(entity_id, attr, observed_at, _check_value(item.get("value"), "value"), unit))
                    by_type[etype] += 1
            except ValidationError as exc:
                rejected.append(Rejection(index=index, field=exc.field or "observation", error=exc.detail))
        return rows, rejected, by_type

    async def submit(self, items: list[Any], ctx: Context | None = None, source: str = "api") -> IngestReport:
        """Validate, store durably and publish a batch; returns once stored rows are committed."""
        rows, rejected, by_type = self.parse(items)
        if rejected and await self.directory.found(_unknown_sensors(items, rejected)):
            # another process created them since this one heard of it: one store read for the batch, then again
            rows, rejected, by_type = self.parse(items)
        if rejected:
            self.rejected += len(rejected)
            from citybrain.store import AddDeadLetter

            now = self.rt.now()
            await self.rt.store.apply([
                AddDeadLetter(source=f"ingest:{source}", reason=f"{r.field}: {r.error}",
                              payload=orjson.dumps(items[r.index], default=str).decode(), time=now)
                for r in rejected
            ])
        if rows and ctx is not None and ctx.area is not None:
            rows, refused = self._confine(items, rows, ctx.area)
            if refused:  # forbidden, not missing: no dead letters for these
                self.rejected += len(refused)
                rejected = sorted(rejected + refused, key=lambda r: r.index)
                by_type = Counter()
                for row in rows:
                    by_type[self.directory.types.get(row.entity_id, "")] += 1
        if rows:
            await self.rt.store.apply([WriteObservations(rows)])
            self.stored_by_type.update(by_type)
            self.batches += 1
            headers = {"source": source}
            if ctx is not None:
                headers["context"] = ctx.id
            await self.publish(rows, headers)
        return IngestReport(stored=len(rows), rejected=rejected[:max(1, self.rt.settings.max_errors)],
                            by_type=dict(by_type), rejected_count=len(rejected))


    def _confine(self, items: list[Any], rows: list[ObservationRow], area: str) -> tuple[list[ObservationRow],
                                                                                        list[Rejection]]:
        """Keep the rows of sensors that lie in `area` (a confined actor's: a device key for one community writes
        that community's sensors only); return them and a rejection per item of a sensor elsewhere."""
        places = self.rt.ports.places
        located = self.directory.places

        def inside(entity_id: str) -> bool:
            place = located.get(entity_id)
            return place is not None and place in places and places.within(place, area)

        outside = {r.entity_id for r in rows if not inside(r.entity_id)}
        if not outside:
            return rows, []
        refused = [Rejection(index=i, field="entity", error=f"entity: {item.get('entity')} lies outside your area "
                                                              f"{area}")
                   for i, item in enumerate(items) if isinstance(item, dict) and item.get("entity") in outside]
        return [r for r in rows if r.entity_id not in outside], refused

    def partition_of(self, entity_id: str) -> int:
        """Return the pipeline partition of an entity: the one of the community its grid cell lies in."""
        cell = self.directory.places.get(entity_id) or ""
        got = self._partitions.get(cell)
        if got is None:
            places = self.rt.ports.places
            community = next((p for p in [cell, *places.ancestors(cell)]
                              if (node := places.get(p)) is not None and node.type == "Community"), None) if cell else None
            got = self.rt.cluster.partition_of(community)
            if len(self._partitions) < 200_000:
                self._partitions[cell] = got
        return got

    async def publish(self, rows: list[ObservationRow], headers: dict[str, str]) -> None:
        """Publish stored rows on cb.obs.<partition>, one batch per partition, each with a content id.

        The id is a digest of the batch, so a batch stored and published again (a client retrying after a
        lost answer) is kept once by the bus (JetStream's duplicate window)."""
        if self.rt.cluster.partitions == 1:
            parts = {0: rows}
        else:
            parts = {}
            for row in rows:
                parts.setdefault(self.partition_of(row.entity_id), []).append(row)
        for n, part in parts.items():
            data = encode_rows(part)
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            await self.rt.bus.publish(obs_subject(n), data, msg_id=f"obs-{n}-{digest}", headers=headers)


async def _ingest_command(rt: CityBrain, cmd: ObservationBatch, ctx: Context) -> Outcome:
    report = await rt.ports.ingest.submit(cmd.items, ctx, cmd.source)
    # the rows are already committed by submit(); the event is not kept (history holds every value)
    return Outcome(result=report, event={"stored": report.stored, "rejected": report.rejected_count}, record=False)


async def setup(rt: CityBrain) -> None:
    """Create the ingest service and its command."""
    rt.ports.ingest = Ingest(rt)
    rt.commands.register("observations.ingest", ObservationBatch, _ingest_command, "store a batch of observations")
    from citybrain.ingest import deadletters  # it imports this module

    deadletters.register(rt)
