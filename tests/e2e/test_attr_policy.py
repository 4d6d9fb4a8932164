"""The attribute access policy of the serving side: the ``exposed_`` prefix, refusal of
everything else, the ``allow_*`` switches, ``safe_attrs``, ``rpyc.restricted`` and the
``@rpyc.exposed`` / ``@rpyc.service`` decorators."""

import pytest

import rpyc


class Obj:
    def __init__(self):
        self.public = "pub"
        self._private = "priv"
        self.exposed_shown = "shown"
        self.special = "sp"

    def method(self):
        return "m"

    def exposed_emethod(self):
        return "em"


class PolicyService(rpyc.Service):
    def __init__(self):
        self.obj = Obj()

    def exposed_get_obj(self):
        return self.obj

    def exposed_get_restricted(self):
        return rpyc.restricted(self.obj, {"public", "method"}, ())

    def exposed_get_writable(self):
        return rpyc.restricted(self.obj, {"public"}, {"public"})

    def exposed_get_list(self):
        return [1, 2, 3]

    def exposed_visible(self):
        return "visible"

    def hidden(self):
        return "hidden"


@rpyc.service
class DecoratedService(rpyc.Service):
    @rpyc.exposed
    def greet(self, name):
        return f"hi {name}"

    @rpyc.exposed
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        @rpyc.exposed
        def total(self):
            return self.x + self.y

    @rpyc.exposed("custom_")
    def custom(self):
        return "custom prefix"

    def internal(self):
        return "internal"


def test_exposed_prefix(harness):
    conn, _ = harness.pair(PolicyService)
    root = conn.root
    assert root.visible() == "visible"
    assert root.exposed_visible() == "visible"
    obj = root.get_obj()
    assert obj.shown == "shown" and obj.exposed_shown == "shown"
    assert obj.emethod() == "em"


def test_non_exposed_names_are_refused(harness):
    conn, _ = harness.pair(PolicyService)
    root = conn.root
    with pytest.raises(AttributeError):
        root.hidden()
    assert not hasattr(root, "hidden")
    obj = root.get_obj()
    for name in ("public", "method", "_private", "special", "__dict__"):
        with pytest.raises(AttributeError):
            getattr(obj, name)
    with pytest.raises(AttributeError):
        root.get_list().append(4)  # a plain public method of a builtin


def test_allow_public_attrs(harness):
    conn, _ = harness.pair(PolicyService, protocol_config={"allow_public_attrs": True})
    obj = conn.root.get_obj()
    assert obj.public == "pub"
    assert obj.method() == "m"
    assert obj.shown == "shown"
    lst = conn.root.get_list()
    lst.append(4)
    assert list(lst) == [1, 2, 3, 4]
    with pytest.raises(AttributeError):
        obj._private


def test_allow_all_attrs(harness):
    conn, _ = harness.pair(PolicyService, protocol_config={"allow_all_attrs": True})
    obj = conn.root.get_obj()
    assert obj._private == "priv"
    assert obj.public == "pub"
    assert conn.root.hidden() == "hidden"


def test_custom_safe_attrs(harness):
    conn, _ = harness.pair(PolicyService, protocol_config={"safe_attrs": {"special", "__len__"}})
    root = conn.root
    obj = root.get_obj()
    assert obj.special == "sp"
    with pytest.raises(AttributeError):
        obj.public
    assert len(root.get_list()) == 3
    with pytest.raises(AttributeError):
        root.get_list()[0]  # __getitem__ is no longer a safe attribute


def test_allow_safe_attrs_off(harness):
    conn, _ = harness.pair(PolicyService, protocol_config={"allow_safe_attrs": False})
    lst = conn.root.get_list()
    with pytest.raises(AttributeError):
        len(lst)
    assert conn.root.visible() == "visible"  # exposed names still work


def test_allow_getattr_off(harness):
    conn, _ = harness.pair(PolicyService, protocol_config={"allow_getattr": False})
    with pytest.raises(AttributeError):
        conn.root.visible


def test_restricted(harness):
    conn, srv = harness.pair(PolicyService)
    r = conn.root.get_restricted()
    assert r.public == "pub"
    assert r.method() == "m"
    with pytest.raises(AttributeError):
        r.special
    with pytest.raises(AttributeError):
        r.shown
    with pytest.raises(AttributeError):
        r.public = "changed"  # no writable names
    w = conn.root.get_writable()
    w.public = "changed"  # the hook bypasses allow_setattr
    assert w.public == "changed"
    with pytest.raises(AttributeError):
        w.special = "x"


def test_exposed_and_service_decorators(harness):
    conn, _ = harness.pair(DecoratedService)
    root = conn.root
    assert root.greet("bob") == "hi bob"
    assert root.exposed_greet("bob") == "hi bob"
    point = root.Point(2, 3)
    assert point.total() == 5
    assert point.exposed_total() == 5
    with pytest.raises(AttributeError):
        root.internal()
    assert not hasattr(root, "custom")  # its prefix is not the configured one
    assert DecoratedService.custom_custom is DecoratedService.custom


def test_custom_exposed_prefix(harness):
    conn, _ = harness.pair(DecoratedService, protocol_config={"exposed_prefix": "custom_"})
    assert conn.root.custom() == "custom prefix"
    assert conn.root.custom_custom() == "custom prefix"
    with pytest.raises(AttributeError):
        conn.root.greet("x")  # exposed_ is now an ordinary (refused) prefix
