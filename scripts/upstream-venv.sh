#!/usr/bin/env bash
# Create (once) the virtual environment holding the real upstream rpyc==6.0.2, the interop
# peer and benchmark baseline. It must never share an interpreter with our `rpyc`.
# Prints the path of its python on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RPYC_UPSTREAM_VENV:-$root/.venv-upstream}
py=${PYTHON:-python3}
# gevent too: tests/e2e/test_gevent.py runs our patched client against upstream's GeventServer.
if ! "$venv/bin/python" -c 'import rpyc, gevent, sys; sys.exit(rpyc.__version__ != "6.0.2")' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "rpyc==6.0.2" "gevent==25.5.1" >&2
fi
echo "$venv/bin/python"
