"""Drills: an emergency plan run in a sandbox against recorded data; the code is in `component.py`.

The command line imports `citybrain.drill.cli`, which imports this package: keeping the package light keeps
`citybrain --help` fast (a drill pulls in the demo city, shapely and numpy only when it runs).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """Resolve the drill's names (run_drill, Drill, …) from citybrain.drill.component on first use."""
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("citybrain.drill.component"), name)
