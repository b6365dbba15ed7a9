"""The data catalog: datasets with owner department, classification, update frequency and fields."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import yaml

from citybrain.commands import Outcome
from citybrain.context import Context
from citybrain.errors import Forbidden, NotFound, ValidationError
from citybrain.store.base import PutDoc
from citybrain.trust.identity import role_of

if TYPE_CHECKING:
    from citybrain.runtime import CityBrain

DATASETS = "catalog"
SEED = Path(__file__).with_name("catalog.yaml")
Classification = Literal["open", "conditional", "restricted"]


class Source(msgspec.Struct, kw_only=True):
    """Where a dataset's rows come from."""

    kind: Literal["entities", "docs", "events"]
    types: list[str] = []  # entities: entity types
    collection: str = ""  # docs: document collection
    type_prefix: str = ""  # events: event type prefix


class Dataset(msgspec.Struct, kw_only=True):
    """One dataset of the catalog."""

    id: str
    title: str
    owner: str  # owner department
    description: str = ""
    classification: Classification = "conditional"
    frequency: str = ""
    source: Source
    fields: list[str] = []


def load_seed(path: Path = SEED) -> list[Dataset]:
    """Return the datasets of a catalog YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [msgspec.convert(d, Dataset) for d in data.get("datasets", [])]


async def get_dataset(rt: CityBrain, dataset_id: str) -> Dataset:
    """Return a dataset or raise NotFound."""
    await ensure_seeded(rt)
    doc = await rt.store.get_doc(DATASETS, dataset_id)
    if doc is None:
        raise NotFound(f"unknown dataset {dataset_id}", field="dataset")
    return msgspec.convert(doc.data, Dataset)


async def list_datasets(rt: CityBrain) -> list[Dataset]:
    """Return every dataset, by id."""
    await ensure_seeded(rt)
    return [msgspec.convert(d.data, Dataset) for d in await rt.store.list_docs(DATASETS, limit=10000)]


class CatalogService:
    """The data catalog as other components read it (port `catalog`)."""

    def __init__(self, rt: CityBrain) -> None:
        self.rt = rt

    async def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by id."""
        return await list_datasets(self.rt)


# document collections that hold credentials or node secrets (password and key hashes, device API keys, signing
# keys, checkpoints carrying MACs), and event types whose data names them: never a dataset, whoever asks
CREDENTIAL_COLLECTIONS = frozenset({"identities", "api_keys", "mqtt_devices", "node_keys", "pipeline_checkpoints",
                                    "pipeline_journal", "fed_peer", "fed_state"})
CREDENTIAL_EVENTS = ("command.user.", "command.device.")


def credential_source(source: Source) -> str | None:
    """Return why a dataset source would expose credentials (None when it does not)."""
    if source.kind == "docs" and source.collection in CREDENTIAL_COLLECTIONS:
        return f"source.collection: {source.collection} holds credentials and is never published"
    if source.kind == "events" and (not source.type_prefix or any(
            source.type_prefix.startswith(p) or p.startswith(source.type_prefix) for p in CREDENTIAL_EVENTS)):
        return (f"source.type_prefix: {source.type_prefix or '(every event)'} includes identity and device events, "
                "which name credentials; publish a narrower prefix")
    return None


async def publish(rt: CityBrain, cmd: Dataset, ctx: Context) -> Outcome:
    """Add or change a dataset in the catalog (data officers and admins)."""
    if role_of(ctx.actor) not in ("admin", "data_officer", "system"):
        raise Forbidden("only a data officer publishes datasets")
    if not cmd.id or "/" in cmd.id:
        raise ValidationError(f"id: {cmd.id!r} is not a valid dataset id", field="id")
    if cmd.source.kind == "docs" and not cmd.source.collection:
        raise ValidationError("source.collection: required for a docs source", field="source.collection")
    why = credential_source(cmd.source)
    if why is not None:
        raise Forbidden(why, field="source")
    data: dict[str, Any] = msgspec.to_builtins(cmd)
    return Outcome(ops=[PutDoc(DATASETS, cmd.id, data)], result=data)


_seeded: weakref.WeakSet[CityBrain] = weakref.WeakSet()  # runtimes whose catalog was seeded (or checked)


async def ensure_seeded(rt: CityBrain) -> None:
    """Seed the catalog the first time it is used on this runtime (lazily, to keep start-up quiet)."""
    if rt not in _seeded:
        _seeded.add(rt)
        await seed(rt)


async def seed(rt: CityBrain) -> int:
    """Publish the shipped catalog if the catalog is empty; return how many datasets were added."""
    if await rt.store.list_docs(DATASETS, limit=1):
        return 0
    datasets = load_seed()
    ctx = rt.context("system:catalog-seed")
    for ds in datasets:
        await rt.execute("catalog.publish", ds, ctx)
    return len(datasets)


def register(rt: CityBrain) -> None:
    """Register `catalog.publish`."""
    rt.commands.register("catalog.publish", Dataset, publish, "add or change a dataset in the data catalog",
                         ("admin", "data_officer"))
