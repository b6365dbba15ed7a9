"""The runtime: one object that owns config, clock, bus, store and the command registry.

Every part of citybrain gets the runtime and reaches nothing through globals. Components (folders
of the package, each declared by its `manifest.py`) register their commands and bus listeners in `setup(runtime)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from citybrain.bus import Bus, Message, open_bus
from citybrain.clock import Clock, SystemClock, iso
from citybrain.cluster import Cluster
from citybrain.commands import CommandRegistry, Outcome
from citybrain.components import resolve, setups
from citybrain.config import Settings
from citybrain.context import Context
from citybrain.errors import Forbidden
from citybrain.events import Event, encode_event
from citybrain.nodekeys import node_secret, subkey
from citybrain.ports import Ports
from citybrain.store import AddDeadLetter, AppendEvent, Store, open_store

if TYPE_CHECKING:
    from citybrain.relay import EventRelay

log = logging.getLogger("citybrain")


class _FollowUps:
    """Events of commands executed while another command finishes, published right after it."""

    __slots__ = ("open", "events")

    def __init__(self) -> None:
        self.open = True  # closed once the parent published: a task spawned inside it publishes directly
        self.events: list[Event] = []


_follow_ups: contextvars.ContextVar[_FollowUps | None] = contextvars.ContextVar("follow_ups", default=None)

# Components set up at start, in order: derived from the components' manifests (citybrain/<name>/manifest.py).
# Each entry names `async def setup(runtime) -> None`: "module" (its `setup`) or "module:function".
COMPONENTS: list[str] = setups()


class CityBrain:
    """One node of citybrain: a city brain or a community mini-brain."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        bus: Bus | None = None,
        components: list[str] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or open_store(self.settings.store)
        self.bus: Bus = bus or open_bus(self.settings.bus, self.settings.bus_stream, self.settings.bus_prefix,
                                          self.settings.bus_replicas)
        self.commands = CommandRegistry()
        self.components = list(COMPONENTS if components is None else components)
        self.ports = Ports()  # the services components offer one another, typed (citybrain.ports)
        self.cluster = Cluster(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_hooks: list[Any] = []
        self.started = False
        self.started_at = ""
        self._secret: str | None = None
        self.relay: EventRelay | None = None  # on a bus with message ids: committed events reach the bus

    @property
    def node_id(self) -> str:
        """This node's id in a federation."""
        return self.settings.node_id

    @property
    def node_secret(self) -> str:
        """The node's secret (the same on every process of the node; see citybrain.nodekeys)."""
        if self._secret is None:
            self._secret = node_secret(self.settings)
        return self._secret

    def subkey(self, purpose: str) -> bytes:
        """A key for one purpose, derived from the node secret (features never hold the secret itself)."""
        return subkey(self.node_secret, purpose)

    def now(self) -> str:
        """Return the clock's current time as canonical UTC ISO 8601."""
        return iso(self.clock.now())

    def context(self, actor: str = "system", parent: Context | None = None, area: str | None = None) -> Context:
        """Return a fresh context originating on this node (confined to `area`, or the parent's area)."""
        return Context(actor=actor, parent_id=parent.id if parent else None, origin=self.node_id,
                       area=area if area is not None else (parent.area if parent else None))

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, connect the bus and set up every component."""
        await self.store.open()
        await self.bus.connect()
        self.bus.dead_letter = self._bus_dead_letter
        for name in self.components:
            await resolve(name, "setup")(self)
        if getattr(self.bus, "duplicate_window", None):  # a bus that drops a message id it has seen
            from citybrain.relay import EventRelay

            self.relay = EventRelay(self, delay=float(self.settings.extra.get("relay_delay", 3.0)))
            self.cluster.singleton("events-relay", self.relay.run)
        await self.cluster.start()  # after setup: every job and partition hook is registered
        self.started = True
        self.started_at = self.now()

    async def stop(self) -> None:
        """Hand jobs and partitions over, stop background tasks, drain the bus and close the store."""
        with contextlib.suppress(Exception):
            await self.cluster.stop()
        for hook in reversed(self._stop_hooks):
            with contextlib.suppress(Exception):
                await hook()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.bus.close()
        await self.store.close()
        self.started = False

    async def __aenter__(self) -> CityBrain:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run a background task owned by the runtime (cancelled at stop)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def on_stop(self, hook: Any) -> None:
        """Call `await hook()` when the runtime stops (before the store closes)."""
        self._stop_hooks.append(hook)

    # commands and events ---------------------------------------------------------------------
    async def execute(self, name: str, payload: Any, ctx: Context | None = None) -> Any:
        """Validate and run a command: its writes and its event commit together, then the event is published."""
        spec = self.commands.get(name)
        ctx = ctx or self.context()
        command = self.commands.validate(spec, payload)
        if ctx.area is not None and spec.place is not None:
            await self._confine(spec.name, await spec.place(self, command), ctx.area)
        outcome: Outcome = await spec.handler(self, command, ctx)
        data = outcome.event
        if data is None:
            import msgspec

            data = msgspec.to_builtins(command) if not isinstance(command, dict) else command
        event = Event(type=f"command.{name}", time=self.now(), context=ctx, data=data or {})
        ops = list(outcome.ops)
        if outcome.record:
            ops.append(AppendEvent(event))
        if ops:
            await self.store.apply(ops)
        outer = _follow_ups.get()
        if outer is not None and outer.open:  # a follow-up of a command still running: publish after it
            outer.events.append(event)  # before its own follow-ups
            if outcome.after is not None:
                await outcome.after()
            return outcome.result
        mine = _FollowUps()
        token = _follow_ups.set(mine)
        try:
            if outcome.after is not None:
                await outcome.after()  # may execute follow-up commands: they are held in `mine`
        finally:
            mine.open = False
            _follow_ups.reset(token)
        await self.publish(event)
        for follow_up in mine.events:  # in the order they committed, after their parent
            await self.publish(follow_up)
        return outcome.result

    async def _confine(self, name: str, located: str | list[str | None] | None, area: str) -> None:
        """Refuse a command any of whose resources lies outside the confined actor's area (or has no place:
        the whole node, an entity nobody placed)."""
        places = self.ports.find(Ports.places)
        for place in (located if isinstance(located, list) else [located]):
            if place is None or places is None or place not in places or not places.within(place, area):
                raise Forbidden(f"{name}: {place or 'the whole node'} lies outside your area {area}", field="area")

    async def emit(self, type_: str, data: dict[str, Any], ctx: Context | None = None, record: bool = True) -> Event:
        """Record (optionally) and publish an event that is not the result of a command."""
        event = Event(type=type_, time=self.now(), context=ctx or self.context(), data=data)
        if record:
            await self.store.apply([AppendEvent(event)])
        outer = _follow_ups.get()
        if outer is not None and outer.open:  # emitted while a command finishes: after that command's event
            outer.events.append(event)
        else:
            await self.publish(event)
        return event

    async def publish(self, event: Event) -> None:
        """Publish an event on the bus under cb.event.<type>."""
        await self.bus.publish(event.subject(), encode_event(event), msg_id=event.id)

    async def dead_letter(self, source: str, reason: str, payload: str | bytes) -> None:
        """Keep a message that could not be processed, with the reason, for listing and replay."""
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        await self.store.apply([AddDeadLetter(source=source, reason=reason, payload=text, time=self.now())])

    async def _bus_dead_letter(self, msg: Message, reason: str) -> None:
        await self.dead_letter(f"bus:{msg.subject}", reason, msg.data)
