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


# -- object traversal (SECURITY.md, "Traversal refusal") ---------------------------------------

from rpyc.core import consts  # noqa: E402
from rpyc.core.protocol import TRAVERSAL_ATTRS  # noqa: E402

SECRET = "module-level secret"


class Base:
    pass


class Widget(Base):
    def __init__(self):
        self.items = [1, 2, 3]

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __contains__(self, x):
        return x in self.items

    def __add__(self, n):
        return [i + n for i in self.items]

    def __enter__(self):
        return "entered"

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return "Widget()"

    def __str__(self):
        return "a widget"

    def __eq__(self, other):
        return isinstance(other, Widget)

    def __hash__(self):
        return 7

    def method(self):
        return "m"


class TraversalService(rpyc.Service):
    def exposed_get_func(self):
        captured = [SECRET]

        def func(x=[]):
            return captured
        return func

    def exposed_get_widget(self):
        return Widget()

    def exposed_get_class(self):
        return Widget

    def exposed_get_builtin(self):
        return len

    def exposed_get_method(self):
        return Widget().method

    def exposed_get_gen(self):
        def gen():
            yield SECRET
        return gen()

    def exposed_get_exc(self):
        try:
            raise ValueError("x")
        except ValueError as exc:
            return exc


def _remote_getattr(conn, proxy, name):
    """GETATTR as a hostile peer sends it (the proxy answers ``__class__`` & co. locally)."""
    return conn.sync_request(consts.HANDLE_GETATTR, proxy, name)


# (getter, attribute) pairs covering each kind of escape hatch
TRAVERSALS = [
    ("get_func", "__globals__"), ("get_func", "__code__"), ("get_func", "__closure__"),
    ("get_func", "__defaults__"), ("get_func", "__builtins__"), ("get_func", "__dict__"),
    ("get_widget", "__class__"), ("get_widget", "__dict__"), ("get_widget", "__getattribute__"),
    ("get_widget", "__reduce_ex__"), ("get_widget", "__setattr__"), ("get_widget", "__init_subclass__"),
    ("get_class", "__bases__"), ("get_class", "__base__"), ("get_class", "__mro__"),
    ("get_class", "__subclasses__"), ("get_class", "mro"), ("get_class", "__dict__"),
    ("get_builtin", "__self__"), ("get_method", "__func__"), ("get_method", "__self__"),
    ("get_gen", "gi_frame"), ("get_gen", "gi_code"), ("get_exc", "__traceback__"),
]


def _assert_refused(conn, getter, name):
    proxy = getattr(conn.root, getter)()
    with pytest.raises(AttributeError) as info:
        _remote_getattr(conn, proxy, name)
    assert "allow_all_attrs" in str(info.value), str(info.value)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("getter,name", TRAVERSALS, ids=["%s.%s" % t for t in TRAVERSALS])
def test_traversal_refused_by_default(harness, getter, name):
    conn, _ = harness.pair(TraversalService)
    _assert_refused(conn, getter, name)


@pytest.mark.parametrize("extra", [
    {"allow_public_attrs": True},
    {"allow_public_attrs": True, "allow_setattr": True, "allow_delattr": True},
])
def test_traversal_refused_with_public_attrs(harness, extra):
    """allow_public_attrs admits public names, yet not generator/frame traversal."""
    conn, _ = harness.pair(TraversalService, protocol_config=extra)
    for getter, name in TRAVERSALS:
        _assert_refused(conn, getter, name)
    gen = conn.root.get_gen()
    assert gen.__next__() == SECRET  # ordinary use stays possible
    with pytest.raises(AttributeError, match="allow_all_attrs"):
        gen.gi_frame


def test_traversal_refused_even_if_listed_in_safe_attrs(harness):
    safe = set(rpyc.core.protocol.DEFAULT_CONFIG["safe_attrs"]) | TRAVERSAL_ATTRS
    conn, _ = harness.pair(TraversalService, protocol_config={"safe_attrs": safe})
    for getter, name in TRAVERSALS:
        _assert_refused(conn, getter, name)


def test_traversal_through_other_handlers_refused(harness):
    """CMP and OLDSLICING name an attribute too: the same refusal applies."""
    conn, _ = harness.pair(TraversalService)
    widget = conn.root.get_widget()
    with pytest.raises(AttributeError, match="allow_all_attrs"):
        conn.sync_request(consts.HANDLE_CMP, widget, "__class__", "__getattribute__")
    with pytest.raises(AttributeError, match="allow_all_attrs"):
        conn.sync_request(consts.HANDLE_CALLATTR, widget, "__reduce_ex__", (2,), ())
    with pytest.raises(AttributeError):
        conn.sync_request(consts.HANDLE_OLDSLICING, widget, "__getattribute__", "__dict__", 0, 1, ())
    with pytest.raises(AttributeError, match="allow_setattr"):
        conn.sync_request(consts.HANDLE_SETATTR, widget, "__class__", widget)


def test_traversal_setattr_refused_when_setattr_allowed(harness):
    conn, _ = harness.pair(TraversalService, protocol_config={"allow_setattr": True, "allow_delattr": True,
                                                              "allow_public_attrs": True})
    widget = conn.root.get_widget()
    with pytest.raises(AttributeError, match="allow_all_attrs"):
        conn.sync_request(consts.HANDLE_SETATTR, widget, "__class__", widget)
    with pytest.raises(AttributeError, match="allow_all_attrs"):
        conn.sync_request(consts.HANDLE_DELATTR, widget, "__dict__")
    widget.items = [9]  # an ordinary public attribute
    assert list(widget) == [9]


def test_allow_all_attrs_is_the_explicit_opt_out(harness):
    conn, _ = harness.pair(TraversalService, protocol_config={"allow_all_attrs": True})
    func = conn.root.get_func()
    assert func.__globals__["SECRET"] == SECRET
    assert list(func.__closure__[0].cell_contents) == [SECRET]
    assert _remote_getattr(conn, conn.root.get_builtin(), "__self__").__name__ == "builtins"
    assert "items" in _remote_getattr(conn, conn.root.get_widget(), "__dict__")
    assert conn.root.get_gen().gi_frame is not None


def test_traversal_attrs_config_can_readmit_a_name(harness):
    allowed = TRAVERSAL_ATTRS - {"__dict__"}
    conn, _ = harness.pair(TraversalService, protocol_config={
        "traversal_attrs": allowed,
        "safe_attrs": set(rpyc.core.protocol.DEFAULT_CONFIG["safe_attrs"]) | {"__dict__"}})
    assert "items" in _remote_getattr(conn, conn.root.get_widget(), "__dict__")
    _assert_refused(conn, "get_func", "__globals__")


def test_ordinary_netref_use_unaffected(harness):
    """What proxies ask for by themselves: calls, iteration, operators, context managers,
    repr/str, hash, equality, isinstance, dir."""
    conn, _ = harness.pair(TraversalService)
    w = conn.root.get_widget()
    assert len(w) == 3
    assert list(w) == [1, 2, 3]
    assert w[1] == 2 and 2 in w
    assert list(w + 1) == [2, 3, 4]
    with w as entered:
        assert entered == "entered"
    assert repr(w) == "Widget()" and str(w) == "a widget"
    assert hash(w) == 7 and w == conn.root.get_widget()
    assert isinstance(w, Widget) and isinstance(w, Base)
    assert type(w).__name__.endswith("Widget")
    assert "method" in dir(w)
    assert list(conn.root.get_func()()) == [SECRET]
    assert list(conn.root.get_gen()) == [SECRET]
    cls = conn.root.get_class()
    assert isinstance(w, cls)
    assert conn.root.get_builtin()("abc") == 3
    assert str(conn.root.get_exc()) == "x"


def test_classic_connections_keep_full_access(harness):
    srv = harness.server(rpyc.SlaveService)
    conn = harness.track(rpyc.classic.connect("127.0.0.1", srv.port))
    assert "path" in _remote_getattr(conn, conn.modules.sys, "__dict__")
    assert "join" in conn.modules.os.path.join.__globals__
    assert conn.builtins.len.__self__.__name__ == "builtins"
    assert conn.builtins.object.__subclasses__()


class _RecordingConnection(rpyc.Connection):
    """Records every attribute name the peer asks the policy about."""

    asked = []

    def _check_attr(self, obj, name, perm):
        type(self).asked.append(name)
        return super()._check_attr(obj, name, perm)


class RecordingTraversalService(TraversalService):
    _protocol = _RecordingConnection


def test_ordinary_netref_use_asks_for_no_traversal_name(harness):
    """The names a proxy sends by itself during ordinary use (the test above) never include
    a traversal name, so the refusal cannot get in its way."""
    _RecordingConnection.asked = []
    srv = harness.server(RecordingTraversalService)
    conn = harness.connect(srv)
    w = conn.root.get_widget()
    len(w), list(w), w[1], 2 in w, w + 1, repr(w), str(w), hash(w), w == w, dir(w)
    with w:
        pass
    isinstance(w, Widget), isinstance(w, conn.root.get_class())
    list(conn.root.get_gen()), conn.root.get_func()(), conn.root.get_builtin()("ab")
    asked = set(_RecordingConnection.asked)
    assert asked and not asked & TRAVERSAL_ATTRS, sorted(asked)
