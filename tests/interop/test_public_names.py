"""Every public name of upstream rpyc 6.0.2 exists in ours (drop-in at the level of names).

The upstream interpreter (the ``upstream_python`` fixture) imports ``rpyc``, notes which rpyc
modules that import loaded, then imports every module of its package and lists each module's
public names. Our interpreter (``ours_python``) then checks, in a fresh process, that the
same modules are reachable as attributes after a bare ``import rpyc``, that every module
imports, and that each has every listed name; a name that is a class or a module upstream
must be one here too. Neither implementation is imported by the pytest process.

A public name is one without a leading underscore, except what a module merely imports from
outside rpyc for its own use: other packages' modules (``sys``, ``socket``) and objects
defined in the standard library or third-party packages (``threading.Lock`` in
``rpyc.core.protocol``, plumbum's ``local`` in ``rpyc.utils.zerodeploy``). Builtins that
upstream re-exports under its own names (``rpyc.lib.compat.select_error``, ``execute``) and
constants count as public.
"""

import json
import subprocess

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

# Names of upstream that cannot exist here, {(module, name): reason}. Keep it as small as
# possible: an entry that is no longer missing fails the test, so it must be removed then.
ALLOWED_MISSING = {}

LIST_UPSTREAM = r"""
import importlib, json, pkgutil, sys, types

import rpyc

after_import = sorted(m for m in sys.modules if m == "rpyc" or m.startswith("rpyc."))
names_of_rpyc = sorted(n for n in dir(rpyc) if not n.startswith("_"))
modules = ["rpyc"] + sorted(m.name for m in pkgutil.walk_packages(rpyc.__path__, "rpyc."))


def kind(value):
    if isinstance(value, types.ModuleType):
        return "module" if value.__name__.split(".")[0] == "rpyc" else None
    origin = getattr(value, "__module__", None)
    if isinstance(origin, str) and origin.split(".")[0] not in ("rpyc", "builtins"):
        return None  # imported from the standard library or another package
    return "class" if isinstance(value, type) else "other"


listing = {}
for name in modules:
    mod = importlib.import_module(name)
    attrs = names_of_rpyc if name == "rpyc" else [n for n in dir(mod) if not n.startswith("_")]
    listing[name] = {n: k for n in attrs for k in [kind(getattr(mod, n))] if k is not None}
print(json.dumps({"after_import": after_import, "modules": listing}))
"""

CHECK_OURS = r"""
import importlib, json, sys, types

upstream = json.load(sys.stdin)
import rpyc

problems = []
for name in upstream["after_import"]:
    obj = rpyc
    for part in name.split(".")[1:]:
        obj = getattr(obj, part, None)
    if not isinstance(obj, types.ModuleType):
        problems.append([name, None, "not reachable as an attribute after 'import rpyc'"])
loaded = {}
for name in upstream["modules"]:
    try:
        loaded[name] = importlib.import_module(name)
    except Exception as exc:
        problems.append([name, None, "import fails: %r" % (exc,)])
for name, names in upstream["modules"].items():
    mod = loaded.get(name)
    if mod is None:
        continue
    for attr, kind in sorted(names.items()):
        if not hasattr(mod, attr):
            problems.append([name, attr, "missing"])
            continue
        value = getattr(mod, attr)
        if kind == "class" and not isinstance(value, type):
            problems.append([name, attr, "a class upstream, %s here" % type(value).__name__])
        if kind == "module" and not isinstance(value, types.ModuleType):
            problems.append([name, attr, "a module upstream, %s here" % type(value).__name__])
print(json.dumps(problems))
"""


def _run(python, role, interop, script, stdin=None):
    proc = subprocess.run([python, "-c", script], input=stdin, capture_output=True, text=True,
                          timeout=90, cwd=str(interop.peers), env=interop.peer_env(role))
    assert proc.returncode == 0, "%s failed:\n%s" % (role, proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def upstream_listing(interop, upstream_python):
    return _run(upstream_python, "upstream", interop, LIST_UPSTREAM)


def test_the_listing_sees_upstream_names(upstream_listing):
    """The listing itself: upstream's modules and a few well-known names are in it."""
    modules = upstream_listing["modules"]
    assert {"rpyc", "rpyc.core.protocol", "rpyc.utils.classic", "rpyc.utils.zerodeploy"} <= set(modules)
    assert modules["rpyc"]["connect"] == "other" and modules["rpyc"]["Connection"] == "class"
    assert modules["rpyc.core.stream"]["NamedPipeStream"] == "class"
    assert "Lock" not in modules["rpyc.core.protocol"]  # threading's, not upstream's
    assert "rpyc.utils.registry" in upstream_listing["after_import"]


def test_ours_has_every_public_upstream_name(interop, ours_python, upstream_listing):
    problems = _run(ours_python, "ours", interop, CHECK_OURS, json.dumps(upstream_listing))
    unexpected = ["%s%s: %s" % (mod, "." + name if name else "", what)
                  for mod, name, what in problems if (mod, name) not in ALLOWED_MISSING]
    assert not unexpected, "upstream names missing or different here:\n  " + "\n  ".join(unexpected)
    stale = sorted(set(ALLOWED_MISSING) - {(mod, name) for mod, name, _ in problems})
    assert not stale, "ALLOWED_MISSING entries that exist now (remove them): %s" % stale
