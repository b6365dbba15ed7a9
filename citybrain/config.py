"""Settings of one citybrain node, from defaults, environment variables and CLI flags."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ENV_PREFIX = "CITYBRAIN_"

# name -> help; every setting is documented here and /-/settings shows them (a test checks the docs)
SETTING_HELP: dict[str, str] = {
    "host": "interface the HTTP API listens on",
    "port": "TCP port of the HTTP API",
    "store": "state store: a SQLite file path or a postgresql:// URL",
    "bus": "event bus: 'memory', or nats:// URLs of the JetStream cluster's servers, comma-separated",
    "node_id": "this node's id (unique in a federation)",
    "role": "'city' or 'community'",
    "parent": "nats:// URL of the parent city node (community role)",
    "area": "place URN this node is responsible for (community role)",
    "mqtt": "MQTT broker URL for device ingest, or '' for none",
    "write_batch": "largest number of write batches one transaction commits",
    "max_body_bytes": "largest HTTP request body accepted (counted as it arrives, chunked bodies too): 413 past it",
    "max_header_bytes": "largest request line and headers accepted (431 past it)",
    "header_timeout": "seconds a client has to send a request's line and headers (from connecting, or from the "
    "first byte of the next request on a kept-alive connection) before the connection is closed",
    "body_timeout": "seconds a client has to send a request's whole body once its headers are in, before the "
    "connection is closed",
    "login_burst": "wrong-password logins allowed per account and per client address before further password "
    "logins are refused with 429 (per process)",
    "login_refill_s": "seconds after which one more password login is allowed again (the throttle's refill)",
    "max_batch_items": "most items one batch request may carry (observations, NGSI-LD entityOperations)",
    "max_errors": "most per-item errors a batch answer lists; the rest are counted",
    "auth": "'on': every HTTP request must authenticate (API key or token); 'off': local demo mode, every "
    "request acts as a local admin. Default 'off' in the library, 'on' for `citybrain serve`",
    "jwt_secret": "HS256 secret signing access tokens (secret; '' = generated into <store>.jwt-secret)",
    "token_ttl": "lifetime of access tokens in seconds",
    "metrics_token": "bearer token that may read /metrics and nothing else, for a Prometheus scraper (secret; "
    "'' = none: /metrics needs an admin, ops, city_operator or auditor credential)",
    "notify_allow": "networks NGSI-LD notifications may reach besides global addresses, comma-separated CIDRs "
    "(loopback, private); '' = loopback only with auth off, nothing with auth on; 'none' = nothing. Link-local "
    "and cloud metadata addresses are always refused",
    "ledger_key": "the ledger's Ed25519 signing key (PRIVATE+KEY+…) or the file holding it ('' = "
    "<store>.ledger-key, created on first start); the same on every process of a node",
    "ledger_checkpoint_ms": "longest time between signed ledger checkpoints while entries are arriving",
    "bus_stream": "JetStream stream holding this node's bus subjects (one per node or deployment on a shared "
    "NATS server)",
    "bus_prefix": "first subject token of this node's bus messages on NATS ('cb'); give each node or "
    "deployment sharing a NATS server its own",
    "bus_replicas": "copies JetStream keeps of the node's stream and lease bucket (3 in a 3-server cluster, so "
    "losing one server loses nothing)",
    "partitions": "number of observation-pipeline partitions (cb.obs.<n>); each has one owner process at a time",
    "lease_ttl": "seconds a process holds a lease (singleton job, pipeline partition) without renewing it; a "
    "surviving process takes over after at most this long",
    "process_id": "this process's name among the node's processes ('' = <host>-<pid>-<random>)",
    "environ": "the components' own CITYBRAIN_* variables (e.g. CITYBRAIN_OPEN311_API_KEYS, CITYBRAIN_RULES_FILE), "
    "read once with the settings (names only here: they may hold keys)",
}

# settings whose values are secrets: never shown by public(), in logs or in errors
SECRET_SETTINGS: frozenset[str] = frozenset({"jwt_secret", "ledger_key", "metrics_token"})


@dataclass
class Settings:
    """Everything a node needs to know to start. Every field can be set by CITYBRAIN_<NAME>."""

    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "var/citybrain.db"
    bus: str = "memory"
    node_id: str = "city"
    role: str = "city"
    parent: str = ""
    area: str = ""
    mqtt: str = ""
    write_batch: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 5.0
    body_timeout: float = 30.0
    login_burst: int = 10
    login_refill_s: float = 6.0
    max_batch_items: int = 50_000
    max_errors: int = 100
    auth: str = "off"
    jwt_secret: str = ""
    token_ttl: int = 3600
    metrics_token: str = ""
    notify_allow: str = ""
    ledger_key: str = ""
    ledger_checkpoint_ms: int = 500
    bus_stream: str = "CITYBRAIN"
    bus_prefix: str = "cb"
    bus_replicas: int = 1
    partitions: int = 8
    lease_ttl: float = 6.0
    process_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # the other CITYBRAIN_* variables (components' options, e.g. CITYBRAIN_OPEN311_API_KEYS), as from_env read
    # them: components read them with env(), never os.environ at run time
    environ: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables, then apply non-None overrides."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("extra", "environ"):
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = (int(raw) if f.type in ("int", int) else float(raw) if f.type in ("float", float)
                                  else raw)
        raw_extra = env.get(ENV_PREFIX + "EXTRA")
        if raw_extra:  # component options (rules_file, sweeps, windows …) as one JSON object
            import json

            try:
                extra = json.loads(raw_extra)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}EXTRA: not a JSON object: {exc}") from None
            if not isinstance(extra, dict):
                raise ValueError(f"{ENV_PREFIX}EXTRA: expected a JSON object of component options")
            values["extra"] = extra
        names = {f.name.upper() for f in fields(cls)} | {"EXTRA"}
        values["environ"] = {k: v for k, v in env.items()
                             if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):] not in names}
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        return cls(**values)

    def env(self, name: str, default: str = "") -> str:
        """Return the component variable CITYBRAIN_<NAME> as it was when these settings were made."""
        return self.environ.get(ENV_PREFIX + name.upper(), default)

    def public(self) -> dict[str, Any]:
        """Return the settings with secrets (passwords, tokens in URLs) redacted."""
        out = asdict(self)
        out.pop("extra", None)
        out["environ"] = sorted(self.environ)  # names only: component variables may hold keys
        for key, value in out.items():
            if key in SECRET_SETTINGS:
                out[key] = "***" if value else ""
            elif isinstance(value, str):
                out[key] = redact(value)
        return out

    def __repr__(self) -> str:
        """Show the settings with secrets redacted (so they never reach a log line)."""
        return f"Settings({self.public()!r})"


_SECRET_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@/]*)@", re.I)


def redact(value: str) -> str:
    """Hide the password part of a URL (user:secret@host -> user:***@host)."""
    value = _SECRET_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", value)
    return re.sub(r"(?i)(password|token|secret|apikey)=([^&\s]+)", r"\1=***", value)
