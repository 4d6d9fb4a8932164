# Helpers shared by scripts/test.sh and scripts/demo.sh (sourced, not run).
#
# They never install into a system Python: every Python package goes into a venv inside the
# repository (.venv, .venv-py3.X, .venv-upstream; all git-ignored), so they work where
# `python3` is "externally managed" (PEP 668, Debian and Ubuntu). Outside the repository they
# change only what they must, and say so in one line: a missing Debian package (python3-venv,
# openssh-server), installed with apt-get when running as root.

say() { printf '== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_install REASON PACKAGE...: install Debian packages that are missing, when we can.
# Returns non-zero (having said why) when they cannot be installed here.
apt_install() {
    local reason=$1; shift
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "note: $reason needs the Debian package(s) $*; install them (sudo apt-get install $*)"
        return 1
    fi
    echo "installing $* with apt-get ($reason)"
    if [ -z "${_APT_UPDATED:-}" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
        { echo "note: apt-get install $* failed"; return 1; }
}

# check_python PY: PY is CPython 3.9 or newer; prints its "X.Y".
check_python() {
    local py=$1 v
    command -v "$py" >/dev/null || die "$py not found: install Python 3.9 or newer (or set PYTHON=...)"
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $py"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$py is Python $v; rpyc needs 3.9 or newer"
    echo "$v"
}

# ensure_venv DIR PY: a venv at DIR made by PY (made once; re-made if it is broken or was
# made by another Python version). Debian's python3 needs python3-venv for that.
ensure_venv() {
    local dir=$1 py=$2 want have
    want=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -x "$dir/bin/python" ]; then
        have=$("$dir/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
        [ "$have" = "$want" ] && return 0
        rm -rf "$dir"
    fi
    if ! "$py" -c 'import ensurepip' 2>/dev/null; then
        # Debian/Ubuntu ship venv's pip bootstrap separately.
        apt_install "making a venv with $py" "python$want-venv" ||
            die "$py cannot make a venv (no ensurepip); install python$want-venv"
    fi
    "$py" -m venv "$dir" || die "$py -m venv $dir failed"
}

need_cargo() {
    command -v cargo >/dev/null ||
        die "cargo not found: building the extension needs a Rust toolchain; install one with rustup, then open a new shell"
}
