#!/usr/bin/env bash
# Run upstream RPyC's own test suite against our package (or, for a baseline, against
# upstream rpyc 6.0.2) and print pass/fail/error/skip counts per test file.
#
#   scripts/upstream-suite.sh UPSTREAM_CHECKOUT [options]
#
# UPSTREAM_CHECKOUT is a directory holding upstream's tests/ and bin/ (a source checkout or an
# unpacked sdist). Nothing is fetched: its tests/ and bin/ are copied to a temporary directory
# (never its rpyc/ package, which would shadow the implementation under test) and each test
# file runs in its own process with unittest, one file at a time (several use fixed ports).
#
# Options:
#   --python PY        interpreter whose `rpyc` is tested (default: python3, i.e. ours)
#   --upstream         test upstream rpyc 6.0.2 instead: $RPYC_UPSTREAM_PYTHON, or the venv
#                      that scripts/upstream-venv.sh made (run that first; this script
#                      installs nothing)
#   --compare          run ours, then upstream, and report how many of the tests that pass on
#                      upstream also pass on ours
#   --bind-threads     run with RPYC_BIND_THREADS=true (default: false)
#   --both-modes       run every file with RPYC_BIND_THREADS=false and =true
#   --only "a b ..."   run only these files (names like test_classic or test_classic.py)
#   --timeout SECONDS  per-file time limit (default 300)
#   --keep             keep the temporary directory and the logs
#
# Excluded, because upstream itself cannot run them here: test_deploy and test_ssh (need an
# SSH server on localhost), test_gevent_server (only when the interpreter lacks gevent),
# test_gdb (gdb), test_numpy and test_service_pickle (numpy/pandas), test_win32pipes
# (Windows). test_registry's UDP case is rewritten to use 127.0.0.1 instead of broadcasting
# (the suite must not send traffic off this machine). test_classic runs with tests.test_magic
# imported first, as in upstream's full-suite run (its test_modules relies on that).
# test_ssl runs with certificates made fresh by the recipe in its own docstring (openssl CLI,
# scripts/openssl-recipe-certs.sh) in place of the committed ones, for both implementations
# (the committed ones expire; a run needs the `openssl` command).
#
# Exit status: 0 if every test that ran passed, 1 otherwise, 2 on usage errors.
set -uo pipefail

usage() { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
src=$1; shift
[ -d "$src/tests" ] && [ -d "$src/bin" ] || { echo "error: $src has no tests/ and bin/" >&2; exit 2; }
src=$(cd "$src" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)

python=python3
impls="ours"
modes="false"
only=""
file_timeout=300
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --python) python=$2; shift 2 ;;
    --upstream) impls="upstream"; shift ;;
    --compare) impls="ours upstream"; shift ;;
    --bind-threads) modes="true"; shift ;;
    --both-modes) modes="false true"; shift ;;
    --only) only=$2; shift 2 ;;
    --timeout) file_timeout=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "error: unknown option $1" >&2; usage ;;
  esac
done

declare -A EXCLUDED=(
  [test_deploy]="needs an SSH server on localhost"
  [test_ssh]="needs an SSH server on localhost"
  [test_gdb]="needs gdb (always skipped upstream)"
  [test_numpy]="needs numpy"
  [test_service_pickle]="needs numpy and pandas"
  [test_win32pipes]="Windows only"
)

# test_gevent_server runs when the tested interpreter can import gevent (the file patches
# only its own process); without gevent it is excluded, as upstream's own run skips it.
gevent_missing() { ! "$1" -c 'import gevent' >/dev/null 2>&1; }
GEVENT_REASON="needs gevent in the tested interpreter (pip install gevent)"

work=$(mktemp -d "${TMPDIR:-/tmp}/rpyc-upstream-suite.XXXXXX")
cleanup() { if [ "$keep" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
cp -r "$src/tests" "$src/bin" "$work/"
# Loopback only: the UDP registry test would bind 0.0.0.0 and broadcast to 255.255.255.255.
sed -i -e 's/UDPRegistryServer(host="0.0.0.0"/UDPRegistryServer(host="127.0.0.1"/' \
       -e 's/return UDPRegistryClient()/return UDPRegistryClient(ip="127.0.0.1")/' \
       "$work/tests/test_registry.py"
if grep -q '255.255.255.255\|UDPRegistryClient()' "$work/tests/test_registry.py"; then
  echo "error: could not point test_registry's UDP case at 127.0.0.1; refusing to broadcast" >&2
  exit 2
fi

# The runner: one unittest module per process, one "@@ STATUS test_id" line per test.
cat > "$work/run_one.py" <<'EOF'
import importlib, importlib.util, os, sys, time, unittest
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
module, preload = sys.argv[1], [m for m in sys.argv[2:] if m]

def say(status, test_id, extra=""):
    # ids of class/module fixtures read "setUpClass (tests.x.Y)": keep them one word
    sys.stdout.write("@@ %s %s%s\n" % (status, test_id.replace(" ", ""), extra))
    sys.stdout.flush()

class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)
    def _took(self):
        return " (%.1fs)" % (time.monotonic() - getattr(self, "_t0", time.monotonic()))
    def addSuccess(self, test):
        super().addSuccess(test); say("PASS", test.id(), self._took())
    def addFailure(self, test, err):
        super().addFailure(test, err); say("FAIL", test.id(), self._took())
    def addError(self, test, err):
        super().addError(test, err); say("ERROR", test.id(), self._took())
    def addSkip(self, test, reason):
        super().addSkip(test, reason); say("SKIP", test.id(), " [%s]" % reason)
    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err); say("PASS", test.id(), " (expected failure)")
    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test); say("FAIL", test.id(), " (unexpected success)")

import rpyc
say("IMPL", "rpyc %s from %s native=%s" % (rpyc.__version__, os.path.dirname(rpyc.__file__),
    importlib.util.find_spec("rpyc._core") is not None))
for name in preload:
    importlib.import_module(name)
try:
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
except unittest.SkipTest as exc:
    say("SKIP", module, " [module skipped: %s]" % exc)
    sys.exit(0)
runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result)
sys.exit(0 if runner.run(suite).wasSuccessful() else 1)
EOF

interpreter() {
  # Never installs anything: the upstream baseline uses an existing interpreter.
  if [ "$1" = upstream ]; then
    echo "${RPYC_UPSTREAM_PYTHON:-$root/.venv-upstream/bin/python}"
  else
    echo "$python"
  fi
}

signal_name() {
  if [ "$1" -gt 128 ]; then kill -l $(( $1 - 128 )) 2>/dev/null || echo "signal $(( $1 - 128 ))"; else echo "error"; fi
}

files=()
for f in "$work"/tests/test_*.py; do
  name=$(basename "$f" .py)
  if [ -n "$only" ]; then
    case " $only " in *" $name "*|*" $name.py "*) ;; *) continue ;; esac
  fi
  files+=("$name")
done

# Fresh certificates for test_ssl, made the way its docstring says (upstream's committed
# ones have expired); the same files serve both implementations.
case " ${files[*]} " in
  *" test_ssl "*)
    command -v openssl >/dev/null || { echo "error: test_ssl needs the openssl command to make its certificates" >&2; exit 2; }
    "$root/scripts/openssl-recipe-certs.sh" "$work/certs" || { echo "error: could not make test_ssl's certificates" >&2; exit 2; }
    for f in server.key server.crt client.key client.crt client2.key client2.crt client-server.bundle.crt; do
      cp "$work/certs/$f" "$work/tests/$f"
    done
    ;;
esac

overall_rc=0
declare -A STATUS  # "impl mode test_id" -> PASS/FAIL/ERROR/SKIP/TIMEOUT
for impl in $impls; do
  py=$(interpreter "$impl")
  if [ -z "$py" ] || ! "$py" -c 'import rpyc' 2>/dev/null; then
    echo "error: no usable interpreter for $impl ($py); for upstream run scripts/upstream-venv.sh" >&2; exit 2
  fi
  for mode in $modes; do
    echo "== $impl ($py), RPYC_BIND_THREADS=$mode"
    printf '%-28s %5s %5s %5s %5s  %s\n' file pass fail error skip note
    tp=0; tf=0; te=0; ts=0
    for name in "${files[@]}"; do
      if [ -n "${EXCLUDED[$name]:-}" ]; then
        printf '%-28s %5s %5s %5s %5s  %s\n' "$name" - - - - "excluded: ${EXCLUDED[$name]}"
        continue
      fi
      if [ "$name" = test_gevent_server ] && gevent_missing "$py"; then
        printf '%-28s %5s %5s %5s %5s  %s\n' "$name" - - - - "excluded: $GEVENT_REASON"
        continue
      fi
      preload=""
      [ "$name" = test_classic ] && preload="tests.test_magic"
      log="$work/$impl-$mode-$name.log"
      t0=$(date +%s)
      { (cd "$work" && RPYC_BIND_THREADS=$mode PYTHONDONTWRITEBYTECODE=1 \
         timeout -k 10 "$file_timeout" "$py" run_one.py "tests.$name" $preload \
         >"$log.out" 2>"$log.err" </dev/null); } 2>/dev/null
      rc=$?
      secs=$(( $(date +%s) - t0 ))
      p=$(grep -c '^@@ PASS ' "$log.out"); f=$(grep -c '^@@ FAIL ' "$log.out")
      e=$(grep -c '^@@ ERROR ' "$log.out"); s=$(grep -c '^@@ SKIP ' "$log.out")
      note="${secs}s"
      if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note="$note TIMEOUT after ${file_timeout}s"; e=$((e + 1))
        STATUS["$impl $mode tests.$name (timeout)"]=TIMEOUT
      elif [ $rc -ne 0 ] && [ $((p + f + e + s)) -eq 0 ]; then
        note="$note crashed (status $rc)"; e=$((e + 1))
        STATUS["$impl $mode tests.$name (crash)"]=ERROR
      elif [ $rc -gt 1 ]; then
        # The tests reported their results, but the process died afterwards (e.g. a crash
        # at interpreter exit): not counted as a test failure, but shown.
        note="$note; process exit status $rc after the tests ($(signal_name $rc))"
      fi
      while read -r _ st id _rest; do
        STATUS["$impl $mode $id"]=$st
      done < <(grep -E '^@@ (PASS|FAIL|ERROR|SKIP) ' "$log.out")
      printf '%-28s %5d %5d %5d %5d  %s\n' "$name" "$p" "$f" "$e" "$s" "$note"
      grep -E '^@@ (FAIL|ERROR) ' "$log.out" | sed 's/^@@ /    /'
      if [ $((f + e)) -gt 0 ] && [ "$impl" = ours ]; then overall_rc=1; fi
      tp=$((tp + p)); tf=$((tf + f)); te=$((te + e)); ts=$((ts + s))
    done
    printf '%-28s %5d %5d %5d %5d\n' TOTAL "$tp" "$tf" "$te" "$ts"
    echo "$impl RPYC_BIND_THREADS=$mode: $tp passed, $((tf + te)) failed, $ts skipped"
  done
done

if [ "$impls" = "ours upstream" ]; then
  for mode in $modes; do
    base=0; kept=0; missing=()
    for key in "${!STATUS[@]}"; do
      case $key in "upstream $mode "*) ;; *) continue ;; esac
      [ "${STATUS[$key]}" = PASS ] || continue
      id=${key#"upstream $mode "}
      base=$((base + 1))
      if [ "${STATUS["ours $mode $id"]:-}" = PASS ]; then kept=$((kept + 1)); else missing+=("$id"); fi
    done
    if [ $base -gt 0 ]; then
      echo "RPYC_BIND_THREADS=$mode: $kept of the $base tests passing on upstream pass on ours ($(( 100 * kept / base ))%)"
      for id in "${missing[@]}"; do echo "    passes on upstream only: $id"; done
    fi
  done
fi
[ "$keep" = 1 ] && echo "logs: $work/*.log.{out,err}"
exit $overall_rc
