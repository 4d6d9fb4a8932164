"""Differential test: our brine decoder against upstream rpyc 6.0.2's, on random inputs.

Short version of ``scripts/brine-diff.py`` (same code, imported by path). Both decoders run
in subprocesses (tests/peers/brine_diff_peer.py); this process never imports rpyc.

    RPYC_BRINE_DIFF_INPUTS=30000   number of inputs (default below)
    RPYC_BRINE_DIFF_SEED=N         replay a run (the seed is printed in the summary and on failure)

See docs/fuzzing.md, "Differential test against upstream brine".
"""

import importlib.util
import os
import random
from pathlib import Path

import pytest

# Every error message of our decoder falls in one of these categories, matched by the first
# category (in this order) one of whose fragments the message contains. "check" names the
# predicate (scripts/brine-diff.py, CHECKS) that must hold on upstream's facts when upstream
# accepts an input we refuse:
#   trailing       upstream's value, re-encoded by upstream's brine.dump, is a strict prefix
#                  of the input (and upstream read exactly that prefix);
#   short_read     upstream read past the end of the input without noticing;
#   non_canonical  the bytes upstream read are not the canonical encoding of the value it
#                  returned (frozenset members may come in any order);
#   too_deep       upstream's value nests deeper than our max_nesting_depth;
#   never          upstream refuses such inputs too: an upstream acceptance is a violation;
#   by_design      refused on purpose although upstream may accept them (docs/fuzzing.md).
# The strictness categories are explained in
# docs/protocol.md#strictness-what-our-decoder-refuses-that-upstream-accepts.
# scripts/brine-diff.py reads this literal with ast.literal_eval: keep it a literal.
STRICTNESS_CATEGORIES = {
    "trailing-bytes": {"fragments": ["unexpected bytes after the brine value"],
                       "check": "trailing"},
    "truncated": {"fragments": ["truncated"], "check": "short_read"},
    # More than 16 members of one Python hash: duplicates, or a hash-flooding attack that
    # costs CPython quadratic time (both refused before CPython builds the set).
    "equal-hashes": {"fragments": ["with the same hash"], "check": "by_design"},
    "duplicate-members": {"fragments": ["duplicate members", "duplicate member"],
                          "check": "non_canonical"},
    "non-canonical": {"fragments": ["not in canonical form"], "check": "non_canonical"},
    "integer-text": {"fragments": ["not a decimal integer"], "check": "non_canonical"},
    "container-shape": {"fragments": ["does not hold a valid tuple"], "check": "non_canonical"},
    "nesting-depth": {"fragments": ["nested deeper than max_nesting_depth"], "check": "too_deep"},
    "unknown-tag": {"fragments": ["unknown brine tag"], "check": "never"},
    "invalid-utf8": {"fragments": ["not valid UTF-8"], "check": "never"},
    "integer-too-long": {"fragments": ["4300"], "check": "never"},
    # A slice inside a frozenset: unhashable before Python 3.12 (upstream refuses it there),
    # refused on every version by us so that both our decoders agree.
    "unhashable-member": {"fragments": ["unhashable"], "check": "by_design"},
}

# What only our decoder may accept, each with the reason: an input (hex), or
# "upstream:<exception class>" for every input upstream refuses with that exception. We must
# never be more lenient than upstream's format, so each entry is argued in docs/fuzzing.md.
OURS_ONLY_ALLOWED = {
    "upstream:RecursionError": (
        "upstream decodes by recursion and stops at Python's recursion limit: 200-500 levels "
        "depending on the container and on the caller's stack (its own dump writes chains of "
        "frozensets 200-249 deep that its load then refuses); ours reads iteratively up to "
        "max_nesting_depth (256) on any stack"
    ),
}

DEFAULT_INPUTS = 30000

ROOT = Path(__file__).resolve().parents[2]


def _brine_diff():
    spec = importlib.util.spec_from_file_location("rpyc_brine_diff", ROOT / "scripts" / "brine-diff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_categories_are_literals_the_script_can_read():
    """The long run (scripts/brine-diff.py) reads the same dicts from this file."""
    bd = _brine_diff()
    assert bd.load_config(Path(__file__)) == (STRICTNESS_CATEGORIES, OURS_ONLY_ALLOWED)
    assert {c["check"] for c in STRICTNESS_CATEGORIES.values()} <= set(bd.CHECKS)


def test_encoder_matches_upstream_dump(upstream_python, interop):
    """The harness's own encoder writes what upstream's brine.dump writes, frozenset members
    in any order (spot check; the differential run checks every valid input this way)."""
    import pickle
    import subprocess
    bd = _brine_diff()
    gen = bd.Inputs(1234)
    values = [gen.value() for _ in range(500)] + [gen.deep_value() for _ in range(3)]
    cases = [(v, bd.encode(v)) for v in values]
    script = ("import pickle, sys; from rpyc.core import brine\n"
              "from brine_diff_peer import canonical_end\n"
              "cases = pickle.load(sys.stdin.buffer)\n"
              "bad = [repr(v)[:200] for v, enc in cases\n"
              "       if canonical_end(v, enc, 0, brine.dump) != len(enc)]\n"
              "print(len(cases), len(bad), bad[:3])\n")
    proc = subprocess.run([upstream_python, "-c", script], input=pickle.dumps(cases, 4),
                          capture_output=True, timeout=120, cwd=str(interop.peers),
                          env=interop.peer_env("upstream"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.decode().split()[:2] == [str(len(cases)), "0"], proc.stdout.decode()


@pytest.mark.timeout(600)
def test_brine_decoder_agrees_with_upstream(ours_python, upstream_python, interop, capsys):
    bd = _brine_diff()
    seed_env = os.environ.get("RPYC_BRINE_DIFF_SEED")
    seed = int(seed_env) if seed_env else random.SystemRandom().randrange(2**32)
    inputs = int(os.environ.get("RPYC_BRINE_DIFF_INPUTS") or DEFAULT_INPUTS)
    report = bd.run(ours_python, upstream_python, inputs, seed, STRICTNESS_CATEGORIES,
                    OURS_ONLY_ALLOWED, env_for_role=interop.peer_env)
    with capsys.disabled():
        print("\n" + report.table())
    if report.violations:
        pytest.fail(report.failure_text(), pytrace=False)
