"""Proxy classes shared between connections (rpyc.core.netref.shared_class_factory)."""

from rpyc.core import netref

METHODS = (("exposed_add", "adds"), ("__len__", None))


def test_the_same_description_gives_the_same_class() -> None:
    a = netref.shared_class_factory(("mod.Thing", 1, 2), METHODS)
    b = netref.shared_class_factory(("mod.Thing", 1, 3), tuple(METHODS))
    assert a is b
    assert a.exposed_add.__doc__ == "adds"
    assert issubclass(a, netref.BaseNetref)


def test_a_different_description_gives_another_class() -> None:
    a = netref.shared_class_factory(("mod.Thing", 1, 2), METHODS)
    other_methods = netref.shared_class_factory(("mod.Thing", 1, 2), METHODS + (("extra", None),))
    other_name = netref.shared_class_factory(("mod.Other", 1, 2), METHODS)
    assert other_methods is not a and hasattr(other_methods, "extra")
    assert other_name is not a and other_name.__name__ == "mod.Other"


def test_descriptions_that_are_not_plain_are_built_but_not_kept() -> None:
    odd = (["exposed_add", "adds"],)  # a list entry: not hashable, not what INSPECT sends
    assert not netref.plain_description(odd)
    assert not netref.plain_description((("name", 5),))
    a = netref.shared_class_factory(("mod.Odd", 1, 2), odd)
    b = netref.shared_class_factory(("mod.Odd", 1, 2), odd)
    assert a is not b and hasattr(a, "exposed_add")


def test_the_shared_classes_stay_bounded() -> None:
    for i in range(netref._SHARED_CLASSES_SIZE + 10):
        netref.shared_class_factory((f"mod.Made{i}", i, 1), METHODS)
    assert len(netref._shared_classes) <= netref._SHARED_CLASSES_SIZE
