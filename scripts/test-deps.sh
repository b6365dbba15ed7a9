#!/usr/bin/env bash
# Install what the test suite needs beyond the Python package: Chromium for browser tests,
# Playwright for Python, and the ngsildclient peer in its own virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [ -f scripts/ngsildclient-venv.sh ]; then
    bash scripts/ngsildclient-venv.sh
fi
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
            || echo "warning: could not install chromium; browser tests will fail in CI and skip elsewhere"
    else
        echo "note: chromium is not installed (apt-get install -y chromium); browser tests will skip outside CI"
    fi
fi
