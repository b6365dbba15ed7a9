"""The federation component; its code is in `component.py`, imported on first use.

The command line imports `citybrain.federation.cli`, which imports this package: keeping the package light keeps
`citybrain --help` fast (the component pulls in nats-py and aiohttp only when a runtime sets it up).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """Resolve the component's names (setup, commands, …) from citybrain.federation.component on first use."""
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("citybrain.federation.component"), name)
