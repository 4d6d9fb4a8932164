#!/usr/bin/env bash
# Install what the scaling tests (tests/scale) need when it is missing: etcd, HAProxy and
# dnsmasq from Debian (dnspython comes with the test extras, pyproject.toml). Prints one line
# per package installed and nothing when all are present; without root or apt-get it
# installs nothing and says which tests will be skipped. The tests start their own servers
# on 127.0.0.1 with ports chosen at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Debian package -> the binary it provides
declare -A binaries=([etcd-server]=etcd [haproxy]=haproxy [dnsmasq]=dnsmasq)
missing=()
for pkg in etcd-server haproxy dnsmasq; do
    bin=${binaries[$pkg]}
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/usr/bin/$bin" ]; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

if apt_install "the scaling tests (tests/scale)" "${missing[@]}"; then
    # Debian starts the packaged services where an init system runs: the tests start their
    # own, so stop the system-wide ones (never needed here).
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        for svc in etcd haproxy dnsmasq; do
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        done
    fi
else
    echo "note: the tests of tests/scale that need ${missing[*]} will be skipped"
fi
