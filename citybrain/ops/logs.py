"""Structured logs: one JSON object per line with time, level, logger, message and the context id.

`configure_logging(json=True)` is what `citybrain serve` calls before it starts uvicorn (with
`log_config=None`, so uvicorn's own loggers go through these handlers too). The context id of the HTTP
request being served (set by the ops middleware from `X-Request-Id`, or generated) is added to every line
logged while serving it. Secrets never reach a line: URL passwords, `password=`/`token=`/`secret=` pairs
and extra fields whose names say they are secret are redacted.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import IO, Any

import orjson

from citybrain.config import redact

# the context id of the work being done (an HTTP request, a command); "" when none
current_context: contextvars.ContextVar[str] = contextvars.ContextVar("citybrain_context", default="")

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_SKIP = frozenset({"context", "color_message"})  # uvicorn adds a coloured copy of the message
_SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "authorization", "jwt")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: ("***" if _is_secret(str(k)) else _clean(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(repr(value))


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line (time in UTC ISO 8601 with milliseconds)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = getattr(record, "context", None) or current_context.get()
        if context:
            out["context"] = str(context)
        for key, value in record.__dict__.items():
            if key in _STANDARD or key in _SKIP or key.startswith("_") or key in out:
                continue
            out[key] = "***" if _is_secret(key) else _clean(value)
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the context id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """Return `time level logger [context] message`."""
        context = getattr(record, "context", None) or current_context.get()
        head = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{head} {record.levelname:<7} {record.name}{f' [{context}]' if context else ''}: "
        line += redact(record.getMessage())
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure_logging(json: bool = True, level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log line (citybrain's and uvicorn's) to `stream` (stderr) as JSON or text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # one line per request is too much at ingest rates; requests are counted in /metrics instead
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
