"""Packaging: our distribution is the `rpyc` that other packages require.

The distribution is named `rpyc` with version 6.0.2+rs.<ours> (pyproject.toml says why), so
that installing a package which requires `rpyc>=6,<7` leaves our package in place instead of
installing upstream's files over it, and it declares upstream's dependency (plumbum).

The end-to-end check needs a built wheel of this checkout and PyPI: scripts/test.sh builds
the wheel and passes it in RPYC_TEST_WHEEL (the test is skipped, saying so, without it).
It never imports rpyc in the pytest process: everything runs in a throwaway venv.
"""

import base64
import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# PEP 440 public version followed by our local label, e.g. 6.0.2+rs.0.1.0
VERSION_RE = re.compile(r"^6\.0\.2\+rs\.(\d+)\.(\d+)\.(\d+)$")


def _pyproject_field(name):
    # Python 3.9/3.10 have no tomllib; the [project] table's simple string fields suffice.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(name), project, re.M)
    assert match, "pyproject.toml [project] has no %s" % name
    return match.group(1)


def test_pyproject_names_the_rpyc_distribution():
    assert _pyproject_field("name") == "rpyc"
    version = _pyproject_field("version")
    assert VERSION_RE.match(version), (
        "version %r must be upstream's 6.0.2 with a +rs.X.Y.Z local label (satisfies "
        "rpyc>=6,<7 and rpyc==6.0.2; see pyproject.toml)" % version)


def test_installed_distribution_is_ours():
    """The interpreter running the tests has our `rpyc` distribution, not upstream's."""
    try:
        dist = importlib.metadata.distribution("rpyc")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("no `rpyc` distribution is installed here: run `pip install .` (or "
                    "scripts/test.sh) first")
    assert VERSION_RE.match(dist.version), "installed rpyc %s is not ours" % dist.version
    requires = [r.split(";")[0].strip() for r in dist.requires or []]
    assert any(re.match(r"^plumbum\b", r) for r in requires), requires
    files = [str(f) for f in dist.files or []]
    # maturin develop installs a .pth to the source tree instead of the files themselves
    assert any("rpyc/_core" in f for f in files) or any(f.endswith(".pth") for f in files), files


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def _make_dependent_wheel(directory):
    """A minimal pure-Python wheel `needs-rpyc` that requires rpyc>=6,<7 (no build backend,
    so nothing is fetched to build it)."""
    files = {
        "needs_rpyc/__init__.py": b"import rpyc\n",
        "needs_rpyc-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: needs-rpyc\nVersion: 1.0\n"
            b"Requires-Dist: rpyc<7,>=6\n"),
        "needs_rpyc-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: rpyc-rs-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"),
    }
    path = Path(directory) / "needs_rpyc-1.0-py3-none-any.whl"
    record = [_record_line(name, data) for name, data in files.items()]
    record.append("needs_rpyc-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("needs_rpyc-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _run(cmd, timeout=600):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, "%s failed (status %s):\n%s\n%s" % (
        " ".join(map(str, cmd)), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.timeout(900)
def test_package_requiring_rpyc_keeps_ours(tmp_path):
    wheel = os.environ.get("RPYC_TEST_WHEEL")
    if not wheel:
        pytest.skip("needs a wheel of this checkout in RPYC_TEST_WHEEL and PyPI "
                    "(scripts/test.sh provides both)")
    assert Path(wheel).is_file(), "RPYC_TEST_WHEEL=%s is not a file" % wheel
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "-q"]
    _run(pip + [wheel])  # its dependency (plumbum) comes from PyPI
    dependent = _make_dependent_wheel(tmp_path)
    # PyPI is reachable here: pip would install upstream's rpyc if ours did not satisfy
    # rpyc>=6,<7 under the name `rpyc`.
    _run(pip + [dependent])
    _run(pip + ["rpyc==6.0.2"])  # the exact upstream pin is satisfied by ours too
    probe = ("import importlib.metadata as m, rpyc, rpyc._core, needs_rpyc, plumbum, "
             "rpyc.utils.zerodeploy; print(m.version('rpyc')); print(rpyc.__file__)")
    out = _run([py, "-c", probe], timeout=120).split("\n")
    assert VERSION_RE.match(out[0]), "pip replaced our rpyc with %s" % out[0]
    assert str(venv) in out[1], out
