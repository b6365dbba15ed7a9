"""A citybrain node for the reliability suite: `citybrain serve` plus provisioning and optional faults.

    python reliability/node.py --store S --bus B [--mqtt URL] --port P --sensors N --devices M [--fault F]

Provisions N HTTP sensors (urn:ngsi-ld:RelSensor:h<i>) and M MQTT devices (apikey rel, ids m<i>) before
it serves, so load can start as soon as /-/health answers. `--fault` wraps the store in a double from
reliability/faults.py that breaks durability on purpose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402

from citybrain.api import create_app  # noqa: E402
from citybrain.config import Settings  # noqa: E402
from citybrain.ops.logs import configure_logging  # noqa: E402
from citybrain.runtime import CityBrain  # noqa: E402
from reliability.faults import FAULTS  # noqa: E402

SENSOR_TYPE = "RelSensor"


def sensor_id(i: int) -> str:
    """Return the URN of HTTP sensor i."""
    return f"urn:ngsi-ld:{SENSOR_TYPE}:h{i}"


def device_entity(i: int) -> str:
    """Return the URN of MQTT device i's entity."""
    return f"urn:ngsi-ld:{SENSOR_TYPE}:m{i}"


def main() -> None:
    """Parse arguments, build the node and serve until SIGTERM (graceful) or SIGKILL."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--bus", default="memory")
    ap.add_argument("--mqtt", default="")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sensors", type=int, default=8)
    ap.add_argument("--devices", type=int, default=0)
    ap.add_argument("--fault", choices=sorted(FAULTS), default=None)
    args = ap.parse_args()
    configure_logging(json=True, level="INFO")
    rt = CityBrain(Settings(store=args.store, bus=args.bus, mqtt=args.mqtt, port=args.port, auth="off"))
    if args.fault:
        FAULTS[args.fault](rt.store)

    async def provision() -> None:
        from citybrain.mqtt.devices import Device, Mapping

        known = rt.ports.directory.types
        for i in range(args.sensors):
            if sensor_id(i) not in known:
                await rt.execute("entity.write", {"entity": {"id": sensor_id(i), "type": SENSOR_TYPE},
                                                  "mode": "upsert"})
        registry = rt.ports.devices
        for i in range(args.devices):
            if registry.find("rel", f"m{i}") is None:
                await registry.add(Device(device_id=f"m{i}", apikey="rel", entity_type=SENSOR_TYPE,
                                          attributes=[Mapping(object_id="seq", name="seq", type="Integer")]))

    app = create_app(rt, startup=[provision])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
