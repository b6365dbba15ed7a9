"""Observations on the bus (platform floor): the `cb.obs` subjects and codec, ingest's report, and `Located`,
an observation as the pipeline's stages (situation, rules, detectors, alerts, plans) see it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from citybrain.model.entity import ObservationRow

OBS_SUBJECT = "cb.obs"  # observation batches are published on cb.obs.<partition>
OBS_ALL = "cb.obs.>"  # every partition (subscribers that need every batch, e.g. NGSI-LD notifications)


def obs_subject(partition: int) -> str:
    """Return the subject of one pipeline partition's observation batches."""
    return f"{OBS_SUBJECT}.{partition}"


class Rejection(msgspec.Struct, kw_only=True):
    """Why one submitted observation was not stored."""

    index: int
    field: str
    error: str


class IngestReport(msgspec.Struct, kw_only=True):
    """What happened to a submitted batch."""

    stored: int = 0
    rejected: list[Rejection] = []  # the first `max_errors` rejections
    by_type: dict[str, int] = {}
    rejected_count: int = 0  # every rejection, also those not listed


class ObservationBatch(msgspec.Struct, kw_only=True):
    """The observations.ingest command: raw items as received, plus where they came from."""

    items: list[Any]
    source: str = "api"


_batch_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(list[ObservationRow])


def encode_rows(rows: list[ObservationRow]) -> bytes:
    """Serialise observation rows for the bus (compact arrays)."""
    return _batch_encoder.encode(rows)


def decode_rows(data: bytes) -> list[ObservationRow]:
    """Parse rows published by encode_rows."""
    return _batch_decoder.decode(data)


class Located:
    """One observation with its time, numeric value, the places it lies in (level → place id) and its partition."""

    __slots__ = ("row", "ts", "value", "areas", "part")

    def __init__(self, row: ObservationRow, ts: float, value: float | None, areas: dict[str, str],
                 part: int = 0) -> None:
        self.row, self.ts, self.value, self.areas, self.part = row, ts, value, areas, part
