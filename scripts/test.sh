#!/usr/bin/env bash
# Build and test everything; the README's test command and CI's (.ci/run).
#
#   scripts/test.sh [pytest args for the main run...]
#
# 1. Rust: rustfmt check, clippy, cargo test (unit and property tests of every crate).
# 2. The main interpreter (PYTHON, default python3): a wheel of this checkout built into
#    .venv with the test extras (pyproject.toml [project.optional-dependencies] test: the one
#    place for test dependencies), then the whole pytest suite, interop with upstream
#    rpyc==6.0.2 (its own venv, .venv-upstream) included.
# 3. Every other CPython of 3.9-3.13 found (pyenv's, or python3.X on PATH): its own wheel and
#    venv (.venv-py3.X), tests/unit and tests/e2e; on the oldest and newest also
#    tests/interop and upstream's own test suite in both RPYC_BIND_THREADS modes.
# 4. The cargo-fuzz targets, 30 s each (docs/fuzzing.md); their output goes to a log.
# Every stage runs even if an earlier one failed; the last lines are a summary, and the exit
# status is non-zero if any stage failed.
#
# Environment:
#   PYTHON              main interpreter (default python3)
#   RPYC_PYTHONS        versions for stage 3 (default "3.9 3.10 3.11 3.12 3.13"; "" for none)
#   RPYC_UPSTREAM_SRC   upstream rpyc 6.0.2's tests/ and bin/ for its test suite: a directory
#                       holding them (a checkout of tag 6.0.2), or a git repository of
#                       upstream with that tag; default .upstream-src when present.
#                       PyPI's sdist of 6.0.2 has neither, so it cannot be fetched from there.
#   RPYC_FUZZ_SECONDS   seconds per fuzz target (default 30; 0 skips fuzzing)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib.sh

py=${PYTHON:-python3}
versions=${RPYC_PYTHONS-3.9 3.10 3.11 3.12 3.13}
fuzz_secs=${RPYC_FUZZ_SECONDS:-30}
logs=$root/target/test-logs
mkdir -p "$logs"
rm -f "$logs"/*.log
t_start=$(date +%s)

need_cargo
main_version=$(check_python "$py") || exit 1

summary=()  # one line per stage
failed=0
last_mark=$t_start
record() {  # record STATUS NAME DETAIL (with the time since the previous record)
    local now; now=$(date +%s)
    summary+=("$(printf '%-4s %-34s %4ss  %s' "$1" "$2" "$((now - last_mark))" "$3")")
    last_mark=$now
    [ "$1" = ok ] || [ "$1" = skip ] || failed=1
}

# run_pytest NAME LOG PY ARGS...: pytest with PY, output to the terminal and LOG; records
# pytest's closing line.
run_pytest() {
    local name=$1 log=$2 python=$3 rc last; shift 3
    # The venv's bin/ first on PATH, as when it is activated: zerodeploy's tests start
    # `pythonX.Y` of the test's own version (ours ships an extension built for one version).
    PATH="$(dirname "$python"):$PATH" "$python" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
    record "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$name" "${last:-no summary (status $rc)}"
}

# install_wheel VENV: build a wheel of this checkout for VENV's python and install it
# with the test extras; prints the wheel's path on stdout (progress on stderr).
install_wheel() {
    local venv=$1 v out wheel
    v=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    out=$root/target/wheels/py$v
    rm -rf "$out"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" >&2 || return 1
    "$venv/bin/maturin" build --release -q -i "$venv/bin/python" -o "$out" >&2 || return 1
    wheel=$(ls "$out"/rpyc-*.whl) || return 1
    # Same version as any earlier build: force the reinstall of ours, then its dependencies.
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel" >&2 &&
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel[test]" >&2 || return 1
    echo "$wheel"
}

# --- optional system packages ----------------------------------------------------------
# The SSH tests start a throwaway sshd on loopback (skipped, with the reason, without one).
if [ ! -x /usr/sbin/sshd ]; then
    apt_install "the SSH tests' local sshd" openssh-server openssh-client ||
        echo "note: SSH tests will be skipped"
fi
# etcd, HAProxy and dnsmasq for tests/scale (each test starts its own on 127.0.0.1).
scripts/scale-deps.sh

# --- 1. Rust ------------------------------------------------------------------------------
say "Rust: rustfmt, clippy, cargo test, the examples tests/rust uses (the first build compiles every crate: a few minutes)"
if cargo fmt --all -- --check && cargo clippy --workspace --all-targets -q -- -D warnings &&
    # The workspace run unifies features (rpyc's dev-dependency turns on `tokio`): the library
    # alone, with its default features and with none, shows code only `tokio` uses as dead.
    cargo clippy -q -p rpyc --lib -- -D warnings &&
    cargo clippy -q -p rpyc --lib --no-default-features -- -D warnings &&
    cargo test --workspace -q 2>&1 | tee "$logs/cargo-test.log" &&
    # tests/rust runs the Rust crate's examples and rpyc-cli: build them now, with the very
    # commands its fixture uses (their feature sets differ from the workspace's), so that the
    # fixture finds them built instead of compiling inside a test's time limit.
    cargo build -q -p rpyc --examples && cargo build -q -p rpyc-cli; then
    record ok "cargo fmt + clippy + test + build" "$(grep -E '^test result' "$logs/cargo-test.log" |
        awk '{p+=$4; f+=$6} END {print p " passed, " f " failed"}')"
else
    record FAIL "cargo fmt + clippy + test + build" "see above"
fi

# --- 2. main interpreter ------------------------------------------------------------------
say "Python $main_version ($py): venv .venv, building and installing the wheel (release build, a few minutes)"
ensure_venv .venv "$py"
if wheel=$(install_wheel .venv); then
    say "upstream rpyc 6.0.2 venv (.venv-upstream), the interop peer"
    upstream_py=$(PYTHON=$py scripts/upstream-venv.sh) || upstream_py=""
    [ -n "$upstream_py" ] && export RPYC_UPSTREAM_PYTHON=$upstream_py
    say "pytest tests/ on Python $main_version"
    RPYC_TEST_WHEEL=$wheel run_pytest "pytest tests/ (py$main_version)" "$logs/pytest-main.log" \
        .venv/bin/python tests "$@"
else
    record FAIL "build py$main_version" "the wheel did not build or install (see above)"
fi

# --- 3. the other interpreters ------------------------------------------------------------
find_python() {  # find_python X.Y: an interpreter of that version, or nothing
    local v=$1 c
    # pyenv's interpreters, found without needing pyenv's shims on PATH
    for c in "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v".*/bin/python; do
        [ -x "$c" ] && { echo "$c"; return; }
    done
    command -v "python$v" || true
}
upstream_src=${RPYC_UPSTREAM_SRC:-}
[ -z "$upstream_src" ] && [ -d .upstream-src/tests ] && upstream_src=.upstream-src
if [ -n "$upstream_src" ] && [ ! -d "$upstream_src/tests" ] &&
    git -C "$upstream_src" rev-parse -q --verify 6.0.2^{commit} >/dev/null 2>&1; then
    # a git repository of upstream (bare or not): take tag 6.0.2's tests/ and bin/
    rm -rf target/upstream-src && mkdir -p target/upstream-src &&
        git -C "$upstream_src" archive 6.0.2 tests bin | tar -x -C target/upstream-src &&
        upstream_src=$root/target/upstream-src
fi
oldest=$(echo "$versions" | tr ' ' '\n' | grep . | sort -V | head -n 1)
newest=$(echo "$versions" | tr ' ' '\n' | grep . | sort -V | tail -n 1)
for v in $versions; do
    extreme=0
    if [ "$v" = "$oldest" ] || [ "$v" = "$newest" ]; then extreme=1; fi
    if [ "$v" = "$main_version" ]; then
        venv=.venv  # tested in full above
    else
        vpy=$(find_python "$v")
        if [ -z "$vpy" ]; then
            record skip "py$v" "no Python $v found (pyenv or python$v on PATH)"
            continue
        fi
        venv=.venv-py$v
        say "Python $v ($vpy): venv $venv, building and installing the wheel (~2 min)"
        ensure_venv "$venv" "$vpy"
        if ! wheel=$(install_wheel "$venv"); then
            record FAIL "build py$v" "the wheel did not build or install (see above)"
            continue
        fi
        dirs=(tests/unit tests/e2e)
        vup=""
        if [ "$extreme" = 1 ]; then
            dirs+=(tests/interop)
            # The upstream peer on the same Python version: teleported functions carry
            # bytecode, which only the same version can run (upstream to upstream too).
            say "upstream rpyc 6.0.2 venv for Python $v (.venv-upstream-py$v)"
            vup=$(RPYC_UPSTREAM_VENV=$root/.venv-upstream-py$v PYTHON=$vpy scripts/upstream-venv.sh) || vup=""
        fi
        say "pytest ${dirs[*]} on Python $v"
        RPYC_UPSTREAM_PYTHON=${vup:-${RPYC_UPSTREAM_PYTHON:-}} RPYC_TEST_WHEEL=$wheel run_pytest "pytest ${dirs[*]#tests/} (py$v)" "$logs/pytest-py$v.log" \
            "$venv/bin/python" "${dirs[@]}"
    fi
    if [ "$extreme" = 1 ]; then
        if [ -z "$upstream_src" ]; then
            record skip "upstream suite (py$v)" "no upstream checkout: set RPYC_UPSTREAM_SRC (PyPI's sdist has no tests/)"
            continue
        fi
        say "upstream rpyc's own test suite on Python $v, both RPYC_BIND_THREADS modes (~4 min)"
        scripts/upstream-suite.sh "$upstream_src" --python "$root/$venv/bin/python" --both-modes \
            2>&1 | tee "$logs/upstream-suite-py$v.log"
        rc=${PIPESTATUS[0]}
        record "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "upstream suite (py$v)" \
            "$(grep -E '^ours RPYC_BIND_THREADS=' "$logs/upstream-suite-py$v.log" |
                sed 's/^ours RPYC_BIND_THREADS=//' | paste -sd ';' -)"
    fi
done

# --- 4. fuzzing ---------------------------------------------------------------------------
if [ "$fuzz_secs" != 0 ]; then
    say "fuzzing the rpyc-wire decoders, ${fuzz_secs}s per target (builds cargo-fuzz once); log: target/test-logs/fuzz.log"
    if PYTHON=.venv/bin/python scripts/fuzz.sh "$fuzz_secs" >"$logs/fuzz.log" 2>&1; then
        record ok "fuzz (4 targets x ${fuzz_secs}s)" "no crashes"
    else
        tail -n 20 "$logs/fuzz.log"
        record FAIL "fuzz" "$(grep -E 'FAILED|error' "$logs/fuzz.log" | tail -n 1)"
    fi
fi

# --- summary ------------------------------------------------------------------------------
echo
echo "== summary ($(( ($(date +%s) - t_start) / 60 )) min; logs in target/test-logs/)"
printf '%s\n' "${summary[@]}"
# One closing line over every pytest run (CI reads it).
total=$(cat "$logs"/pytest-*.log 2>/dev/null | grep -E '[0-9]+ (passed|failed|error)' | grep -E ' in [0-9.]+s' |
    awk '{for (i = 1; i < NF; i++) { n = $i + 0; w = $(i + 1); gsub(/[,=]/, "", w);
          if (w == "passed") p += n; if (w == "failed" || w == "errors" || w == "error") f += n;
          if (w == "skipped") s += n } } END {printf "%d passed, %d failed, %d skipped", p, f, s}')
if [ "$failed" = 0 ]; then echo "all stages passed"; else echo "FAILED: see the stages marked FAIL above"; fi
echo "pytest: $total"
exit $failed
