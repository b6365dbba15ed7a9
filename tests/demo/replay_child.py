"""Child process of the kill -9 test: load the demo city into a SQLite file and replay as fast as possible.

Prints "LOADED" once the city is in, then "ACK <stored> <observedAt>" after each batch the store committed.
"""

from __future__ import annotations

import asyncio
import sys

from citybrain.config import Settings
from citybrain.demo.city import load_demo_city
from citybrain.demo.replay import Replay
from citybrain.runtime import CityBrain


async def main(path: str) -> None:
    """Load, then replay forever (until killed), acknowledging each stored batch on stdout."""
    components = ["citybrain.model.commands", "citybrain.ingest.observations"]
    async with CityBrain(Settings(store=path, bus="memory"), components=components) as rt:
        await load_demo_city(rt, "tiny")
        replay = Replay(rt, speed=0, start="2016-07-06T00:00:00Z", loop=False)
        assert replay.hours
        print("LOADED", flush=True)
        while not replay.done:
            report = await replay.step()
            assert report is not None
            print(f"ACK {report.stored} {replay.sim_time}", flush=True)
        print("DONE", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
