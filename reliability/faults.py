"""Broken-durability doubles: stores that lose data on purpose, to prove the checkers notice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from citybrain.store import Store, WriteObservations


def drop_every(store: Store, n: int = 100) -> None:
    """Make `store` silently drop every n-th observation row while still acknowledging it."""
    original = store.apply
    seen = [0]

    async def apply(ops: Sequence[Any]) -> None:
        kept: list[Any] = []
        for op in ops:
            if isinstance(op, WriteObservations):
                rows = []
                for row in op.rows:
                    seen[0] += 1
                    if seen[0] % n:
                        rows.append(row)
                op = WriteObservations(rows)
            kept.append(op)
        await original(kept)

    store.apply = apply  # type: ignore[method-assign]


def ack_before_commit(store: Store, delay: float = 0.5) -> None:
    """Make `store` acknowledge writes at once and commit them `delay` seconds later (lost on a crash)."""
    original = store.apply
    tasks: set[asyncio.Task[None]] = set()

    async def later(ops: Sequence[Any]) -> None:
        await asyncio.sleep(delay)
        await original(ops)

    async def apply(ops: Sequence[Any]) -> None:
        if not any(isinstance(op, WriteObservations) for op in ops):
            await original(ops)  # only observations are acknowledged early
            return
        task = asyncio.get_running_loop().create_task(later(ops))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    store.apply = apply  # type: ignore[method-assign]


FAULTS = {"drop-every-100": drop_every, "ack-before-commit": ack_before_commit}
