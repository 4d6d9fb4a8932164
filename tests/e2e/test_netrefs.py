"""Proxies (netrefs) of remote objects: attribute access and its policy, calls, operators,
container protocol, repr/str/hash, isinstance, dir, remote context managers and generators."""

import contextlib

import pytest

import rpyc


class Box:
    """Holds a value under an exposed name (reachable as ``value`` or ``exposed_value``)."""

    def __init__(self, value):
        self.exposed_value = value

    def exposed_describe(self, *args, **kwargs):
        return repr((args, sorted(kwargs.items())))


class Num:
    """A remote number: arithmetic and comparison dunders (all in ``safe_attrs``)."""

    def __init__(self, v):
        self.v = v
        self.exposed_v = v

    @staticmethod
    def _val(other):
        return other.v if isinstance(other, Num) else other

    def __add__(self, other):
        return Num(self.v + self._val(other))

    def __radd__(self, other):
        return Num(self._val(other) + self.v)

    def __sub__(self, other):
        return self.v - self._val(other)

    def __rsub__(self, other):
        return self._val(other) - self.v

    def __mul__(self, other):
        return self.v * self._val(other)

    def __truediv__(self, other):
        return self.v / self._val(other)

    def __floordiv__(self, other):
        return self.v // self._val(other)

    def __mod__(self, other):
        return self.v % self._val(other)

    def __pow__(self, other):
        return self.v ** self._val(other)

    def __neg__(self):
        return -self.v

    def __abs__(self):
        return abs(self.v)

    def __eq__(self, other):
        return self.v == self._val(other)

    def __ne__(self, other):
        return self.v != self._val(other)

    def __lt__(self, other):
        return self.v < self._val(other)

    def __le__(self, other):
        return self.v <= self._val(other)

    def __gt__(self, other):
        return self.v > self._val(other)

    def __ge__(self, other):
        return self.v >= self._val(other)

    def __hash__(self):
        return hash(("Num", self.v))

    def __repr__(self):
        return f"Num<{self.v}>"

    def __str__(self):
        return f"the number {self.v}"

    def __int__(self):
        return self.v

    def __index__(self):
        return self.v


class Foo:
    pass


class SubFoo(Foo):
    pass


class Bar:
    pass


class Resource:
    """A context manager recording what happened to it."""

    def __init__(self, suppress=False):
        self.suppress = suppress
        self.events = []

    def __enter__(self):
        self.events.append("enter")
        return 42

    def __exit__(self, typ, val, tb):
        self.events.append(("exit", typ is not None))
        return self.suppress


class NetrefService(rpyc.Service):
    def __init__(self):
        self.box = Box(1)
        self.items = [10, 20, 30]
        self.mapping = {"a": 1, "b": 2}
        self.resources = []
        self.ctx_log = []

    def exposed_get_box(self):
        return self.box

    def exposed_get_list(self):
        return self.items

    def exposed_get_dict(self):
        return self.mapping

    def exposed_num(self, v):
        return Num(v)

    def exposed_peek(self):
        return (dict(self.box.__dict__), list(self.items))

    def exposed_format(self, a, b=0, *, sep=" ", end=""):
        return f"{a}{sep}{b}{end}"

    def exposed_get_formatter(self):
        return self.exposed_format

    exposed_Foo = Foo

    def exposed_make(self, kind):
        return {"foo": Foo, "subfoo": SubFoo, "bar": Bar}[kind]()

    def exposed_resource(self, suppress=False):
        r = Resource(suppress)
        self.resources.append(r)
        return r

    def exposed_resource_events(self, i):
        return tuple(self.resources[i].events)

    @contextlib.contextmanager
    def exposed_managed(self, y):
        self.ctx_log.append("enter")
        try:
            yield 17 + y
        except Exception:
            self.ctx_log.append("exc")
            raise
        finally:
            self.ctx_log.append("exit")

    def exposed_ctx_log(self):
        return tuple(self.ctx_log)

    def exposed_squares(self, n):
        for i in range(n):
            yield i * i


@pytest.fixture
def svc():
    return NetrefService()


@pytest.fixture
def root(harness, svc):
    conn, _ = harness.pair(svc)
    return conn.root


def test_getattr_of_exposed_attribute(root):
    box = root.get_box()
    assert box.value == 1
    assert box.exposed_value == 1
    assert root.num(7).v == 7


def test_setattr_refused_by_default(root, svc):
    box = root.get_box()
    with pytest.raises(AttributeError):
        box.value = 5
    assert svc.box.exposed_value == 1


def test_setattr_allowed_with_allow_setattr(harness, svc):
    conn, _ = harness.pair(svc, protocol_config={"allow_setattr": True})
    box = conn.root.get_box()
    box.value = 99
    assert svc.box.exposed_value == 99
    assert box.value == 99


def test_services_refuse_setattr_even_with_allow_setattr(harness, svc):
    conn, _ = harness.pair(svc, protocol_config={"allow_setattr": True})
    with pytest.raises(AttributeError):
        conn.root.exposed_new_attr = 1
    assert not hasattr(svc, "exposed_new_attr")


def test_delattr_policy(harness):
    svc_default, svc_allowing = NetrefService(), NetrefService()
    conn1, _ = harness.pair(svc_default)
    with pytest.raises(AttributeError):
        del conn1.root.get_box().value
    assert svc_default.box.exposed_value == 1
    conn2, _ = harness.pair(svc_allowing, protocol_config={"allow_delattr": True})
    del conn2.root.get_box().value
    assert not hasattr(svc_allowing.box, "exposed_value")


def test_calls_with_positional_and_keyword_arguments(root):
    assert root.format(1) == "1 0"
    assert root.format(1, 2, sep="-", end="!") == "1-2!"
    assert root.format(a="x", b="y") == "x y"
    fmt = root.get_formatter()  # a bound method proxy: plain CALL
    assert fmt("p", b="q", sep="+") == "p+q"
    assert root.get_box().describe(1, (2, 3), k=None, z="z") == repr(((1, (2, 3)), [("k", None), ("z", "z")]))
    with pytest.raises(TypeError):
        root.format(1, 2, nope=3)


def test_arithmetic_operators(root):
    n = root.num(5)
    m = root.num(3)
    assert (n + 1).v == 6
    assert (n + m).v == 8  # the proxy m travels back to its owner as the real object
    assert (2 + n).v == 7  # __radd__
    assert n - 1 == 4
    assert 10 - n == 5  # __rsub__
    assert n * 3 == 15
    assert n / 2 == 2.5
    assert n // 2 == 2
    assert n % 3 == 2
    assert n ** 2 == 25
    assert -n == -5
    assert abs(root.num(-4)) == 4
    assert int(n) == 5
    assert [0, 1, 2, 3, 4, 5, 6][n] == 5  # __index__


def test_comparison_operators(root):
    n = root.num(5)
    assert n == 5
    assert n != 4
    assert not (n != 5)
    assert n < 6 and n <= 5 and n > 4 and n >= 5
    assert not (n < 5)
    assert n == root.num(5)
    assert root.num(1) < root.num(2)
    assert sorted([root.num(3), root.num(1), root.num(2)])[0] == 1


def test_container_protocol_on_remote_list(root, svc):
    rl = root.get_list()
    assert len(rl) == 3
    assert list(rl) == [10, 20, 30]
    assert [x for x in rl] == [10, 20, 30]
    assert rl[0] == 10 and rl[-1] == 30
    assert list(rl[0:2]) == [10, 20]
    assert 20 in rl and 99 not in rl
    rl[1] = "twenty"
    assert svc.items == [10, "twenty", 30]
    del rl[0]
    assert svc.items == ["twenty", 30]
    assert bool(rl)


def test_container_protocol_on_remote_dict(root):
    rd = root.get_dict()
    assert len(rd) == 2
    assert rd["a"] == 1
    assert "b" in rd and "zz" not in rd
    assert sorted(rd) == ["a", "b"]
    rd["c"] = 3
    assert rd["c"] == 3
    with pytest.raises(KeyError):
        rd["missing"]


def test_repr_and_str(root):
    n = root.num(3)
    assert repr(n) == "Num<3>"
    assert str(n) == "the number 3"
    assert f"{n}" == "the number 3"
    assert repr(root.get_list()) == "[10, 20, 30]"


def test_hash_and_unhashable(root):
    n = root.num(3)
    assert hash(n) == hash(("Num", 3))
    d = {n: "x"}
    assert d[n] == "x"
    with pytest.raises(TypeError):
        hash(root.get_list())
    assert hash(root.Foo) == hash(Foo)  # a remote class (here: the very same class object)


def test_isinstance_of_builtin_proxies(root):
    rl = root.get_list()
    assert isinstance(rl, list)
    assert isinstance(rl, rpyc.BaseNetref)
    assert type(rl) is not list
    assert isinstance(root.get_dict(), dict)
    assert not isinstance(rl, dict)


def test_isinstance_against_remote_class(root):
    remote_foo_cls = root.Foo
    foo = root.make("foo")
    assert isinstance(foo, remote_foo_cls)
    assert not isinstance(root.make("bar"), remote_foo_cls)
    assert not isinstance(root.get_list(), remote_foo_cls)
    with pytest.raises(TypeError):
        isinstance(1, foo)  # an instance proxy is not a class


def test_dir_of_remote_objects(root):
    names = dir(root)
    assert isinstance(names, list)
    assert "exposed_get_box" in names and "exposed_num" in names
    assert "exposed_value" in dir(root.get_box())
    assert "append" in dir(root.get_list())


def test_remote_context_manager_without_exception(root):
    with root.managed(3) as x:
        assert x == 20
        assert root.ctx_log() == ("enter",)
    assert root.ctx_log() == ("enter", "exit")


def test_remote_context_manager_with_exception(root):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with root.managed(3):
            raise Boom("inside")
    assert root.ctx_log() == ("enter", "exc", "exit")


def test_remote_context_manager_can_suppress(root):
    with root.resource(suppress=True) as v:
        assert v == 42
        raise ValueError("swallowed by the remote __exit__")
    assert root.resource_events(0) == ("enter", ("exit", True))
    with root.resource() as v:
        pass
    assert root.resource_events(1) == ("enter", ("exit", False))


def test_remote_generator(root):
    assert list(root.squares(5)) == [0, 1, 4, 9, 16]
    gen = root.squares(2)
    assert next(gen) == 0
    assert next(gen) == 1
    with pytest.raises(StopIteration):
        next(gen)
    assert sum(root.squares(100)) == sum(i * i for i in range(100))
