"""The cases component's manifest (read without importing the package: see citybrain.components)."""

from citybrain.components import Command, Component

MANIFEST = Component(
    name="cases",
    summary="GB/T 30428 lifecycle, catalog, calendar, routing, deadlines, duplicates, one-matter services",
    order=70,
    setup="citybrain.cases:setup",
    provides=("cases",),
    http="citybrain.cases.api:mount",
    http_order=50,
    cli=(
        Command("cases", "citybrain.cases.cli:cases_app", order=110,
                help="Cases: report, file, dispatch, handle, verify, close, evaluate; exceptions."),
    ),
    reads="`alert.raised`, HTTP",
    writes="`command.case.*`, docs `cases`",
)
