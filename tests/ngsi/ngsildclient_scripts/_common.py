"""Shared by the ngsildclient scripts: connect to the citybrain under test, print one JSON result line.

These scripts run in build/ngsildclient-venv (ngsildclient pins its own httpx/rich), never in the project
venv. Usage: <venv>/bin/python <script>.py <port> [args …]; the last line of stdout is a JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

logging.disable(logging.CRITICAL)  # ngsildclient logs every request at INFO


def client() -> Any:
    """Return an ngsildclient Client connected to 127.0.0.1:<argv[1]>."""
    from ngsildclient import Client

    return Client(hostname="127.0.0.1", port=int(sys.argv[1]), verbose=False)


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last line of stdout."""
    print(json.dumps(result, default=str))
