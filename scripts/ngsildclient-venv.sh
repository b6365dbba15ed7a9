#!/usr/bin/env bash
# Create build/ngsildclient-venv: ngsildclient pins old httpx/rich, so it lives apart from the project venv.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${NGSILDCLIENT_VENV:-$here/build/ngsildclient-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "ngsildclient==${NGSILDCLIENT_VERSION:-0.5.2}"
"$venv/bin/python" -c "import ngsildclient, sys; print('ngsildclient', ngsildclient.__version__ if hasattr(ngsildclient, '__version__') else '?', 'in', sys.prefix)"
