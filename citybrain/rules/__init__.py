"""Rules and detectors: judge every observation against the operations centre's rule file and the anomaly detector.

The rule file (YAML, `citybrain/rules/default.yaml` unless settings.extra["rules_file"] or the
CITYBRAIN_RULES_FILE environment variable name another) is validated at start: a bad file stops the
node with line-and-field errors instead of failing at 3 a.m. `rules.reload` re-reads it at run time.
Both rules and detectors produce Signals, handed to the sinks in rt.ports.signals (risk, alerts).

Overrides (an active emergency plan's stricter rules and detector threshold) are the command `rules.override`,
kept as documents in "rule_overrides" until `rules.restore`: every process of the node applies them from its
command events, and a process that starts applies the active ones, so an override is in force node-wide and
survives a restart. The rules in force are always the file's rules with the active overrides laid over them
(in the order they were put in force), so overrides of several plans end in any order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import yaml

from citybrain.bus import Message
from citybrain.commands import Outcome
from citybrain.context import Context, new_id
from citybrain.events import decode_event
from citybrain.model.types import known_quantities
from citybrain.ports import Ports
from citybrain.rules.detectors import Detectors
from citybrain.rules.engine import RuleEngine, partition_problems, rules_key
from citybrain.rules.loader import DEFAULT_FILE, RuleFileError, load_rules, parse_rules
from citybrain.rules.spec import Rule
from citybrain.signals import Signal
from citybrain.store import PutDoc

if TYPE_CHECKING:
    from citybrain.obs import Located
    from citybrain.runtime import CityBrain

__all__ = ["RuleFileError", "load_rules", "parse_rules", "Signal", "SignalHub", "known_quantities"]

log = logging.getLogger("citybrain.rules")
Sink = Callable[[list[Signal]], Awaitable[None]]
OVERRIDES = "rule_overrides"
OVERRIDE_EVENTS = ("cb.event.command.rules.override", "cb.event.command.rules.restore")
# the node's rule file as last put in force by rules.reload (one document, id "current"): every process of
# the node judges by it, also one started later or on a machine whose copy of the file differs
RULE_SETS = "rule_sets"
RELOAD_EVENT = "cb.event.command.rules.reload"


class SignalHub:
    """Where rule and detector signals go: every sink gets every batch, in registration order."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.count = 0

    async def publish(self, signals: list[Signal]) -> None:
        """Hand a batch of signals to every sink."""
        if not signals:
            return
        self.count += len(signals)
        for sink in self.sinks:
            await sink(signals)


class RuleReload(msgspec.Struct, kw_only=True):
    """The rules.reload command: re-read the rule file (or another path)."""

    path: str | None = None


class RuleOverride(msgspec.Struct, kw_only=True):
    """rules.override: rules (rule-file syntax; same id replaces a rule) and a detector threshold put in force on
    every process under `key` (a plan run) until rules.restore."""

    key: str
    source: str = "override"
    rules: list[dict[str, Any]] = []
    detector_threshold: float | None = None


class RuleRestore(msgspec.Struct, kw_only=True):
    """rules.restore: end the override put in force under `key`."""

    key: str


class Judge:
    """Runs rules and detectors on the located observations of the pipeline.

    Its state (rule units, detector series) is kept per pipeline partition: capture/restore/drop move one
    partition's share between processes (citybrain.situation.partitions)."""

    name = "rules"

    def __init__(self, rt: CityBrain, rules: list[Rule], path: str | None) -> None:
        self.rt = rt
        self.path = path
        self.check_partitions(rules, path or "default.yaml")
        self._series_part: dict[tuple[str, str], int] = {}  # detector series -> partition
        self.hub = rt.ports.own(Ports.signals, SignalHub)
        self.base_rules = rules  # the rule file's, before overrides
        self.engine = self._engine(rules)
        extra = rt.settings.extra
        self.base_threshold = float(extra.get("detector_threshold", 0.99))
        self.detectors = Detectors(threshold=self.base_threshold, warmup=int(extra.get("detector_warmup", 72)))
        self.detect = bool(extra.get("detectors", True))
        self.overrides: dict[str, dict[str, Any]] = {}  # key -> active override document, as stored
        self._parsed: dict[str, list[Rule]] = {}  # override generation -> its parsed rules
        self.rule_set: dict[str, Any] | None = None  # the stored rule set judged by (None: the local file)

    def _engine(self, rules: list[Rule]) -> RuleEngine:
        places = self.rt.ports.places
        types = {pid: p.type for r in rules for pid in r.pinned if (p := places.get(pid)) is not None}
        engine = RuleEngine(rules, types)
        engine.within = places.within
        return engine

    def check_partitions(self, rules: list[Rule], source: str) -> None:
        """Refuse rules that one pipeline partition cannot judge (scope above community, pinned places)."""
        problems = partition_problems(rules, self.rt.cluster.partitions)
        if problems:
            raise RuleFileError(source, problems)

    def read_file(self, path: str | None = None) -> tuple[str, str, list[Rule]]:
        """Read and validate the rule file (this one, or the node's); return (text, source name, rules)."""
        file = Path(path or self.path or DEFAULT_FILE)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleFileError(str(file), [{"line": 0, "field": "(file)", "error": f"cannot read: {exc}"}]) from None
        return text, file.name, self.parse_text(text, file.name)

    def parse_text(self, text: str, source: str) -> list[Rule]:
        """Parse and validate rule-file text (RuleFileError with lines and fields if it is bad)."""
        rules = parse_rules(text, source, known_quantities(), self.rt.ports.places)
        self.check_partitions(rules, source)
        return rules

    def put_file(self, rules: list[Rule], doc: dict[str, Any] | None) -> None:
        """Judge by these rules of the file (the stored rule set `doc`, None for the local file) from now on."""
        self.base_rules = rules
        self.rule_set = doc
        if doc is not None and doc.get("path"):
            self.path = str(doc["path"])
        self.rebuild()  # the overrides in force stay in force over the new file

    async def load_rule_set(self) -> None:
        """At start: judge by the rule set the node put in force with rules.reload, if there is one."""
        doc = await self.rt.store.get_doc(RULE_SETS, "current")
        if doc is None:
            return
        try:
            rules = self.parse_text(str(doc.data["text"]), str(doc.data.get("source") or "rules"))
        except RuleFileError as exc:  # the city changed under the stored rules: keep the file's, say so
            log.error("the node's rule set (rules.reload at %s) cannot be applied, judging by the file: %s",
                      doc.data.get("at"), exc.detail)
            return
        here = self.path or str(DEFAULT_FILE)
        if _file_digest(here) != doc.data.get("digest"):
            log.warning("judging by the node's rule set put in force by %s at %s (%s), which differs from "
                        "this process's %s: run rules.reload to put a changed file in force on every process",
                        doc.data.get("actor"), doc.data.get("at"), doc.data.get("source"), here)
        self.put_file(rules, doc.data)

    async def on_reload_event(self, msg: Message) -> None:
        """Follow rules.reload on any process: judge by the rule set it stored."""
        gen = decode_event(msg.data).data.get("gen")
        if gen is None or (self.rule_set is not None and self.rule_set.get("gen") == gen):
            return  # this process ran it (or an old event without a stored rule set)
        doc = await self.rt.store.get_doc(RULE_SETS, "current")  # the store, not the event, is the truth
        if doc is None or (self.rule_set is not None and self.rule_set.get("gen") == doc.data.get("gen")):
            return
        try:
            rules = self.parse_text(str(doc.data["text"]), str(doc.data.get("source") or "rules"))
        except RuleFileError as exc:
            log.error("rules.reload of another process cannot be applied here: %s", exc.detail)
            return
        self.put_file(rules, doc.data)

    # overrides -------------------------------------------------------------------------------
    def parse_override(self, doc: dict[str, Any]) -> list[Rule]:
        """Return the rules of an override document (parsed once per generation; RuleFileError if bad)."""
        got = self._parsed.get(str(doc["gen"]))
        if got is None:
            if not doc.get("rules"):
                return []
            text = yaml.safe_dump({"version": 1, "rules": doc["rules"]}, allow_unicode=True)
            got = parse_rules(text, str(doc.get("source") or "override"), known_quantities(), self.rt.ports.places)
            self.check_partitions(got, str(doc.get("source") or "override"))
            self._parsed[str(doc["gen"])] = got
        return got

    def in_force(self, overrides: dict[str, dict[str, Any]]) -> tuple[list[Rule], float]:
        """Return the rules and detector threshold that hold with these overrides over the file's rules."""
        rules = list(self.base_rules)
        threshold = self.base_threshold
        for doc in sorted(overrides.values(), key=lambda d: (d["applied_at"], d["gen"])):
            by_id = {r.id: r for r in self.parse_override(doc)}
            rules = [by_id.pop(r.id, r) for r in rules] + list(by_id.values())
            if doc.get("detector_threshold") is not None:
                threshold = float(doc["detector_threshold"])
        return rules, threshold

    def rebuild(self) -> None:
        """Put the file's rules with the active overrides in force (a new engine: rule windows start afresh)."""
        rules, threshold = self.in_force(self.overrides)
        self.engine = self._engine(rules)
        self.detectors.threshold = threshold
        live = {str(d["gen"]) for d in self.overrides.values()}
        self._parsed = {g: r for g, r in self._parsed.items() if g in live}

    async def load_overrides(self) -> None:
        """Apply the overrides that are active in the store (at start: they outlive every process)."""
        found: dict[str, dict[str, Any]] = {}
        for doc in await self.rt.store.list_docs(OVERRIDES, where={"active": True}, limit=10_000):
            try:
                self.parse_override(doc.data)
            except RuleFileError as exc:  # the city changed under a stored override: run without it, say so
                log.error("rule override %s cannot be applied: %s", doc.id, exc.detail)
                continue
            found[doc.id] = doc.data
        if found or self.overrides:
            self.overrides = found
            self.rebuild()

    async def on_override_event(self, msg: Message) -> None:
        """Follow rules.override / rules.restore of any process: re-read that override from the store."""
        data = decode_event(msg.data).data
        key = str(data.get("key", ""))
        held = self.overrides.get(key)
        if held is not None and data.get("active") and held["gen"] == data.get("gen"):
            return  # put in force here already (this process ran the command)
        if held is None and not data.get("active") and not data.get("gen"):
            return
        doc = await self.rt.store.get_doc(OVERRIDES, key)  # the store, not the event, is the truth
        if doc is not None and doc.data.get("active"):
            if held is not None and held["gen"] == doc.data["gen"]:
                return
            self.overrides[key] = doc.data
        elif held is not None:
            del self.overrides[key]
        else:
            return
        self.rebuild()

    async def on_rows(self, located: list[Located]) -> None:
        """Judge each numeric observation; pass the resulting signals on."""
        out: list[Signal] = []
        engine = self.engine
        detectors = self.detectors if self.detect else None
        for item in located:
            if item.value is None:
                continue
            row = item.row
            if row.attr in engine.by_quantity:
                out += engine.observe(row.entity_id, row.attr, item.ts, item.value, item.areas)
            if detectors is not None:
                sig = detectors.observe(row.entity_id, row.attr, item.ts, item.value, item.areas)
                if sig is not None:
                    out.append(sig)
                key = (row.entity_id, row.attr)
                if key not in self._series_part:
                    self._series_part[key] = item.part
        await self.hub.publish(out)

    async def sweep(self) -> list[Signal]:
        """Judge absence-of-data rules at the clock's time."""
        now = self.rt.clock.now().timestamp()
        if self.engine.newest and now - self.engine.newest > 86400:
            now = self.engine.newest  # a replay: the clock is far ahead of the data, judge by data time
        signals = self.engine.sweep(now)
        if signals and self.rt.ports.has(Ports.pipeline):
            self.rt.ports.pipeline.touched()  # unit levels changed outside a batch: checkpoint them
        await self.hub.publish(signals)
        return signals

    async def sweep_loop(self, every: float) -> None:
        """Sweep every `every` seconds of clock time."""
        while True:
            await self.rt.clock.sleep(every)
            await self.sweep()

    def describe(self) -> list[dict[str, Any]]:
        """Return the loaded rules for the API."""
        return [{"id": r.id, "name": r.name, "category": r.category, "quantity": r.quantity, "scope": r.scope,
                 "levels": sorted(r.levels, key=["blue", "yellow", "orange", "red"].index), "line": r.line,
                 "overrides": [o.place for o in r.overrides], "scheduled": r.schedule is not None}
                for r in self.engine.rules]

    # partition state (citybrain.situation.partitions) ----------------------------------------
    def capture(self, n: int) -> Any:
        """Return partition n's rule units and detector series."""
        part_of = self.rt.cluster.partition_of
        return {"rules": rules_key(self.engine.rules), "newest": self.engine.newest,
                "units": self.engine.units_of(n, part_of),
                "series": {k: s for k, s in self.detectors.series.items() if self._series_part.get(k, 0) == n}}

    def restore(self, n: int, state: Any) -> None:
        """Take partition n's rule units and detector series back from a checkpoint."""
        self.engine.restore_units(state["units"], state["rules"] == rules_key(self.engine.rules))
        self.engine.newest = max(self.engine.newest, float(state["newest"]))
        self.detectors.series.update(state["series"])
        for key in state["series"]:
            self._series_part[key] = n

    def drop(self, n: int) -> None:
        """Forget partition n's rule units and detector series."""
        self.engine.drop_units(n, self.rt.cluster.partition_of)
        for key in [k for k, p in self._series_part.items() if p == n]:
            del self._series_part[key]
            self.detectors.series.pop(key, None)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: str) -> str | None:
    """The digest of a rule file's text, None if it cannot be read."""
    with contextlib.suppress(OSError):
        return _digest(Path(path).read_text(encoding="utf-8"))
    return None


async def _reload(rt: CityBrain, cmd: RuleReload, ctx: Context) -> Outcome:
    """Read the rule file on this process, store it as the node's rule set; every process judges by it."""
    judge = rt.ports.own(Ports.rules, Judge)
    text, source, rules = judge.read_file(cmd.path)  # a bad file is refused here: the rules in force stay
    stored = await rt.store.get_doc(RULE_SETS, "current")
    doc = {"text": text, "source": source, "path": cmd.path or judge.path or "", "digest": _digest(text),
           "gen": new_id(), "at": rt.now(), "actor": ctx.actor, "rules": [r.id for r in rules]}

    async def after() -> None:
        judge.put_file(rules, doc)

    return Outcome(ops=[PutDoc(RULE_SETS, "current", doc, expect_version=stored.version if stored else 0)],
                   result={"rules": len(rules), "gen": doc["gen"]}, after=after,
                   event={"path": cmd.path, "rules": doc["rules"], "gen": doc["gen"], "digest": doc["digest"]})


def _levels(rule: Rule | None) -> list[str]:
    return [] if rule is None else sorted(rule.levels)


async def _override(rt: CityBrain, cmd: RuleOverride, ctx: Context) -> Outcome:
    judge = rt.ports.own(Ports.rules, Judge)
    doc = {"key": cmd.key, "source": cmd.source, "rules": cmd.rules, "detector_threshold": cmd.detector_threshold,
           "active": True, "applied_at": rt.now(), "restored_at": None, "gen": new_id(), "actor": ctx.actor}
    new = judge.parse_override(doc)  # a bad rule is refused here, before anything is stored
    stored = await rt.store.get_doc(OVERRIDES, cmd.key)
    before_rules = {r.id: r for r in judge.engine.rules}
    before_threshold = float(judge.detectors.threshold)
    _, after_threshold = judge.in_force({**judge.overrides, cmd.key: doc})
    result = {"key": cmd.key, "rules": [{"rule": r.id, "before": _levels(before_rules.get(r.id)), "after": _levels(r)}
                                        for r in new],
              "detector_threshold": {"before": before_threshold, "after": after_threshold}}

    async def after() -> None:
        judge.overrides[cmd.key] = doc
        judge.rebuild()

    return Outcome(ops=[PutDoc(OVERRIDES, cmd.key, doc, expect_version=stored.version if stored else 0)],
                   result=result, after=after,
                   event={"key": cmd.key, "gen": doc["gen"], "active": True, "source": cmd.source,
                          "rules": [r.id for r in new], "detector_threshold": cmd.detector_threshold})


async def _restore(rt: CityBrain, cmd: RuleRestore, ctx: Context) -> Outcome:
    judge = rt.ports.own(Ports.rules, Judge)
    stored = await rt.store.get_doc(OVERRIDES, cmd.key)
    if stored is None or not stored.data.get("active"):
        return Outcome(result={"key": cmd.key, "restored": False}, record=False,
                       event={"key": cmd.key, "gen": None, "active": False})
    doc = {**stored.data, "active": False, "restored_at": rt.now()}
    rest = {k: d for k, d in judge.overrides.items() if k != cmd.key}
    _, threshold = judge.in_force(rest)

    async def after() -> None:
        judge.overrides.pop(cmd.key, None)
        judge.rebuild()

    return Outcome(ops=[PutDoc(OVERRIDES, cmd.key, doc, expect_version=stored.version)], after=after,
                   result={"key": cmd.key, "restored": True, "rules": [r.get("id") for r in doc["rules"]],
                           "detector_threshold": threshold},
                   event={"key": cmd.key, "gen": doc["gen"], "active": False})


async def setup(rt: CityBrain) -> None:
    """Load the rule file, create the judge and plug it into the situation pipeline."""
    if not rt.ports.has(Ports.signals):
        rt.ports.signals = SignalHub()
    path = rt.settings.extra.get("rules_file") or rt.settings.env("RULES_FILE") or None
    rules = load_rules(path, known_quantities(), rt.ports.places)
    judge = Judge(rt, rules, path)
    rt.ports.rules = judge
    rt.ports.situation.listeners.append(judge.on_rows)
    if rt.ports.has(Ports.pipeline):
        rt.ports.pipeline.register(judge)
    rt.commands.register("rules.reload", RuleReload, _reload,
                         "re-read and validate the rule file; every process of the node judges by it")
    rt.commands.register("rules.override", RuleOverride, _override,
                         "put override rules and a detector threshold in force on every process (until restore)")
    rt.commands.register("rules.restore", RuleRestore, _restore, "end an override put in force by rules.override")
    for subject in OVERRIDE_EVENTS:  # every process follows them: no durable, no queue
        await rt.bus.subscribe(subject, judge.on_override_event)
    await rt.bus.subscribe(RELOAD_EVENT, judge.on_reload_event)
    await judge.load_rule_set()
    await judge.load_overrides()  # after subscribing: an override put in force meanwhile is not missed
    if judge.engine.sweep_rules:
        every = float(rt.settings.extra.get("absence_sweep", 60.0))
        # on every process, not as a singleton: each sweeps the units of the partitions it owns
        rt.spawn(judge.sweep_loop(every), name="rules-absence")
