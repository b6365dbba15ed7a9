"""Ports: the typed, declared services components offer one another (`rt.ports`).

A component that offers a service sets its port in `setup` (`rt.ports.cases = desk`) and declares it in its
manifest (`provides=("cases",)`); a component that uses one reads it (`rt.ports.cases.catalog`) and, when the
provider must be set up first, names the provider in its manifest's `needs`. Reading a port nobody set raises
`MissingPort` with the port's name, so a node that runs without a component fails at the first use with a
clear message instead of a `KeyError`; `rt.ports.find(Ports.mqtt)` returns None instead, for optional ones.

Each port's type is declared here, in the platform floor: the floor's own types (the place index, the entity
directory) as they are, and every feature's service as a `Protocol` naming just what the other features use.
So features type-check against one another without importing one another's modules; the provider's own
modules take their concrete object back with `rt.ports.own(Ports.cases, CaseDesk)` (checked at run time).
`tests/test_manifests.py` checks that each component sets the ports its manifest provides, and no others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from collections import Counter

    from citybrain.context import Context
    from citybrain.model.directory import Directory
    from citybrain.model.places import PlaceIndex
    from citybrain.runtime import CityBrain
    from citybrain.store.base import Doc, PutDoc

T = TypeVar("T")
C = TypeVar("C")


class MissingPort(LookupError):
    """A port was read that no component of this node provides (or not yet: see the manifest's `needs`)."""


class Port(Generic[T]):
    """One typed slot of `Ports`: set once by its provider, read by anyone."""

    def __init__(self, doc: str) -> None:
        self.doc = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Port[T]: ...

    @overload
    def __get__(self, obj: Ports, owner: type) -> T: ...

    def __get__(self, obj: Ports | None, owner: type) -> Port[T] | T:
        if obj is None:
            return self
        try:
            return obj._values[self.name]  # type: ignore[no-any-return]
        except KeyError:
            raise MissingPort(f"no component of this node provides the port {self.name!r} ({self.doc}); "
                              f"is its component set up, and before this one (manifest `needs`)?") from None

    def __set__(self, obj: Ports, value: T) -> None:
        obj._values[self.name] = value


# the features' services, as the other features see them --------------------------------------------------------
class IngestPort(Protocol):
    """Observations in: validate, store (state + history, one commit), publish on `cb.obs`."""

    rejected: int
    stored_by_type: Counter[str]

    async def submit(self, items: list[Any], ctx: Context | None = None, source: str = "api") -> Any: ...


class SignalsPort(Protocol):
    """Where rules and detectors hand their signals (alerts and risk add sinks)."""

    sinks: list[Callable[[list[Any]], Awaitable[None]]]

    async def publish(self, signals: list[Any]) -> None: ...


class PipelinePort(Protocol):
    """The partitioned observation pipeline (situation → rules/detect → risk, alerts, plans)."""

    def register(self, holder: Any) -> None: ...
    def publish_with(self, publisher: Any) -> None: ...
    def part_of_community(self, community: str | None) -> int: ...
    def part_of_place(self, place_id: str | None) -> int: ...
    def touched(self) -> None: ...
    async def read_others(self, max_age: float | None = None) -> dict[int, Any]: ...
    def describe(self) -> dict[str, Any]: ...


class SituationPort(Protocol):
    """Latest values, windows and freshness per place; listeners get every located batch of rows."""

    listeners: list[Callable[[list[Any]], Awaitable[None]]]


class RulesPort(Protocol):
    """The rules engine in force (file, stored rule set and overrides) and its detectors."""

    path: str | None
    engine: Any
    detectors: Any

    def describe(self) -> list[dict[str, Any]]: ...


class RiskPort(Protocol):
    """Hazard × exposure × vulnerability per cell and community."""

    async def everywhere(self) -> dict[str, dict[str, Any]]: ...
    def listing(self, level: str | None = None, minimum: str = "blue",
                risk: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]: ...


class AlertsPort(Protocol):
    """The alert book."""

    async def fetch(self, alert_id: str) -> Doc | None: ...


class CasesPort(Protocol):
    """The case desk: lifecycle, catalog of categories and matters, routing."""

    catalog: Any

    async def find(self, *, state: str | None = None, department: str | None = None, overdue: bool | None = None,
                   category: str | None = None, queue: str | None = None, channel: str | None = None,
                   kind: str | None = None, place: str | None = None) -> list[dict[str, Any]]: ...


class ModesPort(Protocol):
    """Operating modes per area."""

    def declared(self, area: str) -> dict[str, Any]: ...
    def mode_of(self, place: str) -> dict[str, Any]: ...
    def city(self) -> str | None: ...


class DispatchPort(Protocol):
    """Resources and incidents on the road graph."""

    async def resources(self) -> list[Any]: ...
    async def incidents(self, state: str | None = None) -> list[dict[str, Any]]: ...


class PlansPort(Protocol):
    """Emergency plans and their runs."""

    @property
    def plans(self) -> Mapping[str, Any]: ...
    @property
    def runs(self) -> Mapping[str, dict[str, Any]]: ...

    def run_of(self, plan_id: str) -> dict[str, Any] | None: ...


class FederationPort(Protocol):
    """City ↔ community messages: directives down, reports up."""

    def down_ops(self, target: str, kind: str, payload: dict[str, Any], ctx: Context) -> list[PutDoc]: ...
    async def area_view(self, within: str | None) -> dict[str, Any]: ...


class LedgerPort(Protocol):
    """The tamper-evident log over the event history."""

    log: Any
    signer: Any
    checkpoint_time: str

    def checkpoint_status(self) -> dict[str, Any]: ...

    async def record_access(self, ctx: Context, dataset: str, count: int, grant: str | None,
                            **more: Any) -> None: ...


class IndicatorsPort(Protocol):
    """The indicator engine."""


class AuthPort(Protocol):
    """Login and identification of requests."""

    async def identify(self, credential: str) -> Any: ...


class CatalogPort(Protocol):
    """The data catalog: datasets and their classification."""

    async def list_datasets(self) -> list[Any]: ...


class MqttPort(Protocol):
    """MQTT device ingest (counters for /metrics)."""

    received: int
    stored: int
    rejected: int


class IdentitiesPort(Protocol):
    """The directory of identities (its cache is dropped when an identity changes)."""

    def forget(self, name: str | None = None) -> None: ...


class DevicesPort(Protocol):
    """Provisioned MQTT devices."""

    devices: dict[str, Any]


class NotifierPort(Protocol):
    """The NGSI-LD subscriptions this process notifies (`watches`, by subscription id) and where
    notifications may go (`egress`, a citybrain.ngsi.egress.EgressPolicy)."""

    watches: dict[str, Any]
    egress: Any

    def put(self, watch: Any) -> None: ...
    def remove(self, sub_id: str) -> None: ...


class TenantsPort(Protocol):
    """NGSI-LD tenants: one runtime each, made on first use."""

    async def ensure(self, name: str, create: bool) -> CityBrain: ...


class Ports:
    """The node's ports (see the module docstring): one typed attribute per service."""

    places: Port[PlaceIndex] = Port("the place index: city → district → street → community → grid")
    directory: Port[Directory] = Port("the entity directory: id → type and place")
    ingest: Port[IngestPort] = Port("observation ingest")
    signals: Port[SignalsPort] = Port("the signal hub of rules and detectors")
    pipeline: Port[PipelinePort] = Port("the partitioned observation pipeline")
    situation: Port[SituationPort] = Port("the live situation")
    rules: Port[RulesPort] = Port("the rules engine")
    risk: Port[RiskPort] = Port("the risk model")
    alerts: Port[AlertsPort] = Port("the alert book")
    cases: Port[CasesPort] = Port("the case desk")
    modes: Port[ModesPort] = Port("operating modes")
    dispatch: Port[DispatchPort] = Port("resource dispatch")
    plans: Port[PlansPort] = Port("emergency plans")
    federation: Port[FederationPort] = Port("federation")
    ledger: Port[LedgerPort] = Port("the ledger")
    indicators: Port[IndicatorsPort] = Port("the indicator engine")
    auth: Port[AuthPort] = Port("authentication")
    catalog: Port[CatalogPort] = Port("the data catalog")
    identities: Port[IdentitiesPort] = Port("the identity directory")
    mqtt: Port[MqttPort] = Port("MQTT device ingest")
    devices: Port[DevicesPort] = Port("MQTT device registry")
    ngsi_notifier: Port[NotifierPort] = Port("NGSI-LD subscription notifier")
    ngsi_tenants: Port[TenantsPort] = Port("NGSI-LD tenants")
    tenant: Port[str] = Port("the NGSI-LD tenant a tenant runtime serves (unset on the node itself)")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    @classmethod
    def names(cls) -> list[str]:
        """Return the names of every port."""
        return [name for name, value in vars(cls).items() if isinstance(value, Port)]

    def find(self, port: Port[T]) -> T | None:
        """Return a port's service, or None when no component provides it on this node."""
        return self._values.get(port.name)  # type: ignore[no-any-return]

    def has(self, port: Port[Any]) -> bool:
        """Tell whether a component provides the port."""
        return port.name in self._values

    def own(self, port: Port[Any], cls: type[C]) -> C:
        """Return a port's service as its provider's concrete class (for the provider's own modules)."""
        value = port.__get__(self, Ports)
        if not isinstance(value, cls):
            raise TypeError(f"port {port.name!r} holds a {type(value).__name__}, not a {cls.__name__}")
        return value

    def find_own(self, port: Port[Any], cls: type[C]) -> C | None:
        """Return a port's service as its provider's concrete class, or None when nobody provides it."""
        value = self._values.get(port.name)
        if value is not None and not isinstance(value, cls):
            raise TypeError(f"port {port.name!r} holds a {type(value).__name__}, not a {cls.__name__}")
        return value

    def provided(self) -> list[str]:
        """Return the names of the ports set on this node."""
        return sorted(self._values)

    def __repr__(self) -> str:
        return f"Ports({', '.join(self.provided())})"

