#!/usr/bin/env bash
# Install everything the tests need (the package with its Rust extension, pytest, the
# upstream rpyc==6.0.2 peer venv) and run every test: Rust unit/property tests, lint, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
"$py" -m pip install -q --disable-pip-version-check maturin pytest pytest-timeout cryptography plumbum
# The SSH tests start a throwaway sshd on loopback (skipped, with the reason, without one).
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client) \
        >/dev/null 2>&1 || echo "note: openssh-server could not be installed; SSH tests will be skipped"
fi
"$py" -m pip install -q --disable-pip-version-check .
scripts/upstream-venv.sh >/dev/null
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace -q
# Run from tests/ so that `import rpyc` finds the installed package, not ./python.
"$py" -m pytest -q -p no:cacheprovider tests "$@"
scripts/fuzz.sh 30  # rpyc-wire decoders, 30 s per target (docs/fuzzing.md); a crash fails CI
