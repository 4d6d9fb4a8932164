#!/usr/bin/env bash
# Install the package from this checkout into the repository's venv (.venv, made with
# PYTHON or python3 if missing), start the demo server, run the demo client against it,
# stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
base=${PYTHON:-python3}
version=$(check_python "$base")
ensure_venv .venv "$base"
py=.venv/bin/python
say "pip install . into .venv (Python $version; the first build compiles the Rust extension: a few minutes)"
"$py" -m pip install -q --disable-pip-version-check .
port=${PORT:-18861}
say "demo server on 127.0.0.1:$port, then the client"
"$py" examples/add_server.py --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$py" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
  sleep 0.1
done
"$py" examples/add_client.py --port "$port"
