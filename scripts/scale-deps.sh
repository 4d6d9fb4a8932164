#!/usr/bin/env bash
# Install what the scaling tests (tests/scale) need when it is missing: etcd, HAProxy and
# dnsmasq from Debian, dnspython from PyPI into $PYTHON (default python3). Prints one line per
# package installed and nothing when all are present. Without root or apt-get it installs
# nothing and says which tests will be skipped.
set -euo pipefail
py=${PYTHON:-python3}

# Debian package -> the binary it provides
declare -A binaries=([etcd-server]=etcd [haproxy]=haproxy [dnsmasq]=dnsmasq)
missing=()
for pkg in etcd-server haproxy dnsmasq; do
    bin=${binaries[$pkg]}
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/usr/bin/$bin" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "scale-deps: cannot install ${missing[*]} (needs root and apt-get): their tests in tests/scale will be skipped"
    else
        apt-get update -qq >/dev/null 2>&1 || true
        for pkg in "${missing[@]}"; do
            if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; then
                echo "scale-deps: installed $pkg"
            else
                echo "scale-deps: could not install $pkg: its tests in tests/scale will be skipped"
            fi
        done
        # Debian starts the packaged services where an init system runs: the tests start
        # their own on run-time ports, so stop the system-wide ones (never needed here).
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            for svc in etcd haproxy dnsmasq; do
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
            done
        fi
    fi
fi

if ! "$py" -c "import dns.resolver" >/dev/null 2>&1; then
    if "$py" -m pip install -q --disable-pip-version-check dnspython >/dev/null 2>&1; then
        echo "scale-deps: installed dnspython"
    else
        echo "scale-deps: could not install dnspython: the DNS SRV tests will be skipped"
    fi
fi
