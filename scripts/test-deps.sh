#!/usr/bin/env bash
# Install what the test suite needs beyond the Python package: Chromium for browser tests,
# Playwright for Python, and the ngsildclient peer in its own virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [ -f scripts/ngsildclient-venv.sh ]; then
    bash scripts/ngsildclient-venv.sh
fi
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v pdftoppm >/dev/null 2>&1 || need="$need poppler-utils"
fc-list 2>/dev/null | grep -qi "cjk" || need="$need fonts-noto-cjk"
# tests/deploy runs the sample proxy configs (deploy/nginx.conf, deploy/haproxy.cfg) on private ports
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need="$need haproxy"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        (apt-get install -y -q $need >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $need >/dev/null)) \
            || echo "warning: could not install$need; tests needing them fail in CI and skip elsewhere"
    else
        echo "note: missing$need (apt-get install -y$need); tests needing them skip outside CI"
    fi
fi
