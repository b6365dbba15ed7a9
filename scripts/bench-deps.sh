#!/usr/bin/env bash
# Install what `make bench` needs beyond the test dependencies: wrk, the HTTP load generator of bench_ngsi
# (without it bench_ngsi falls back to an httpx client that tops out at a few hundred requests/s and
# measures the client, not citybrain). Node-RED is installed by bench_mqtt itself (npm, into build/).
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null)) \
            || echo "warning: could not install wrk; bench_ngsi falls back to its httpx client"
    else
        echo "note: wrk is missing (apt-get install -y wrk); bench_ngsi falls back to its httpx client"
    fi
fi
