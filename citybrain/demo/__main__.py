"""Run the demo without the CLI: python -m citybrain.demo [--store var/demo.db] [--duration 30] [--speed 600]."""

from __future__ import annotations

import argparse
import asyncio
import json
import math

from citybrain.config import Settings
from citybrain.demo.replay import run_demo
from citybrain.runtime import CityBrain


async def _main(store: str, duration: float, speed: float, start: str | None, size: str) -> dict[str, object]:
    async with CityBrain(Settings(store=store, bus="memory")) as rt:
        return await run_demo(rt, duration, speed, start, size=size)


def main(argv: list[str] | None = None) -> int:
    """Load the demo city into a SQLite file, replay for a while and print the summary as JSON."""
    parser = argparse.ArgumentParser(description="load the demo city and replay recorded series")
    parser.add_argument("--store", default="var/demo.db", help="SQLite file (or postgresql:// URL)")
    parser.add_argument("--duration", type=float, default=30.0, help="real seconds to replay")
    parser.add_argument("--speed", type=float, default=600.0, help="× real time; 0 = as fast as possible")
    parser.add_argument("--start", default=None, help="first recorded time (default 2016-07-15T00:00:00Z)")
    parser.add_argument("--size", default="small", help="tiny, small, medium or large")
    args = parser.parse_args(argv)
    speed = math.inf if args.speed <= 0 else args.speed
    summary = asyncio.run(_main(args.store, args.duration, speed, args.start, args.size))
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
