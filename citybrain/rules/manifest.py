"""The rules component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Component

MANIFEST = Component(
    name="rules",
    summary="YAML rules (thresholds, windows, durations, rate, absence, N-of-M, schedules, overrides)",
    order=40,
    setup="citybrain.rules:setup",
    needs=("model", "situation"),
    provides=("signals", "rules"),
    reads="situation",
    writes="signals",
)
