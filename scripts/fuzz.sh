#!/usr/bin/env bash
# Fuzz the rpyc-wire decoders with cargo-fuzz (libFuzzer); fails on any crash.
#
#   scripts/fuzz.sh [seconds_per_target] [target...]
#
# Targets (fuzz/fuzz_targets/, described in docs/fuzzing.md): brine_decode, frame_decode,
# message_decode, connection; all four by default, for 60 s each.
# Seeds fuzz/corpus/<target>/ from the spec vectors, builds once, runs each target.
# Installs cargo-fuzz into .tools/cargo-fuzz when it is not on PATH.
# A crash, panic, failed invariant, hang (-timeout) or RSS blow-up stops the run with a
# non-zero status and leaves the input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
#
# Environment:
#   FUZZ_TOOLCHAIN  rustup toolchain for the build (default: nightly when installed,
#                   else the default toolchain with RUSTC_BOOTSTRAP=1)
#   FUZZ_SANITIZER  cargo-fuzz --sanitizer value (default: none, see below)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. FUZZ_ARGS=-runs=10000000 for a long run
#                   that stops at an execution count (the time limit still applies)
#   PYTHON          interpreter for the seeding step (default: python3)
#
# Why these settings:
# - --sanitizer none: rpyc-wire is #![forbid(unsafe_code)], so AddressSanitizer has nothing
#   of ours to check, and it costs ~2-3x in executions per second; coverage-guided search
#   is what finds bugs here. It also keeps the build free of -Z flags: cargo-fuzz 0.13
#   passes only stable -C flags (sancov passes, coverage llvm-args) unless a sanitizer is
#   requested, which needs -Zsanitizer and therefore nightly. Without a sanitizer
#   libFuzzer's -malloc_limit_mb does nothing (it needs the sanitizer's malloc hooks), so
#   each target counts its own allocations through a metering global allocator and
#   asserts the bounds itself (fuzz/src/lib.rs); -rss_limit_mb is only a backstop.
# - Toolchain: cargo-fuzz is documented for nightly, so nightly is used when present.
#   On a stable-only machine RUSTC_BOOTSTRAP=1 lets stable rustc accept whatever -Z flag
#   a cargo-fuzz version or FUZZ_SANITIZER=address may add (with --sanitizer none,
#   cargo-fuzz 0.13 on stable 1.95 builds and runs without it; the variable is a safety
#   net, exported only for the fuzz build, never for the main workspace).
# - Default build profile of cargo-fuzz: release, with debug assertions and overflow
#   checks on (an arithmetic overflow in the decoders is a crash, as it should be).
# - -max_len per target: large enough for the biggest vector (a 4300-digit INT is 4305
#   bytes, a captured session stream ~9 KiB), small enough to keep executions fast.
# - -timeout=10: an input taking longer is reported as a hang (the decoders are linear).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(brine_decode frame_decode message_decode connection)
fi

# cargo-fuzz: the one on PATH if any, else built once into .tools/cargo-fuzz (git-ignored),
# never into ~/.cargo.
tools=$(pwd)/.tools/cargo-fuzz
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into .tools/cargo-fuzz (cargo install, ~2 min)"
    cargo install -q cargo-fuzz --locked --root "$tools"
fi

toolchain=${FUZZ_TOOLCHAIN:-}
if [[ -z $toolchain ]] && command -v rustup >/dev/null &&
    rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=nightly
fi
fuzz=(cargo)
if [[ -n $toolchain ]]; then
    fuzz+=("+$toolchain")
fi
fuzz+=(fuzz)
if [[ $toolchain != nightly* ]]; then
    export RUSTC_BOOTSTRAP=1
fi
sanitizer=${FUZZ_SANITIZER:-none}
echo "fuzz: ${fuzz[*]} (RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-unset}), sanitizer $sanitizer," \
    "${secs}s per target: ${targets[*]}"

"${PYTHON:-python3}" fuzz/seed_corpus.py
"${fuzz[@]}" build --sanitizer "$sanitizer"

max_len() {
    case $1 in
        frame_decode | connection) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

for t in "${targets[@]}"; do
    echo "== fuzz $t"
    # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
    if ! "${fuzz[@]}" run --sanitizer "$sanitizer" "$t" -- \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 ${FUZZ_ARGS:-}; then
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: no crashes"
