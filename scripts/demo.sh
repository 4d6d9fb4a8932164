#!/usr/bin/env bash
# Install the package from this checkout, start the demo server, run the demo client
# against it, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
"$py" -m pip install -q --disable-pip-version-check .
port=${PORT:-18861}
"$py" examples/add_server.py --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$py" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
  sleep 0.1
done
"$py" examples/add_client.py --port "$port"
