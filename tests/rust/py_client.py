"""A Python client of the Rust server (crates/rpyc/examples/server.rs), run under our rpyc or
upstream rpyc 6.0.2: `python py_client.py PORT [--bind-threads]` (every connection with
`bind_threads`, as the server must be too). One JSON line per check:
{"check": name, "ok": bool, "detail": text}."""

import gc
import importlib.util
import json
import sys
import threading
import time
import traceback

import rpyc

PORT = int(sys.argv[1])
BIND_THREADS = sys.argv[2:] == ["--bind-threads"]


def connect(**config):
    cfg = {"sync_request_timeout": 10, "bind_threads": BIND_THREADS}
    cfg.update(config)
    return rpyc.connect("127.0.0.1", PORT, config=cfg)


NATIVE = importlib.util.find_spec("rpyc._core") is not None  # ours, not upstream


def check_calls(c):
    root = c.root
    if NATIVE:  # the Rust server answered our hello: no INSPECT for the root, no DEL answers
        assert c._peer_features == frozenset({"quiet_del", "root_class"}), c._peer_features
    assert root.add(5, 10) == 15
    assert root.add(2**62, 2**62) == 2**63
    assert root.add("a", "b") == "ab"
    assert root.add((1,), (2, "x")) == (1, 2, "x")
    assert root.add(1.5, 2) == 3.5
    assert root.greet("py") == "hello py, from Rust"
    assert root.greet(name="kw") == "hello kw, from Rust"
    assert "calc.Calc" in repr(root)
    assert "add" in dir(root)
    c.ping("x" * 5000)  # raises PingError unless echoed; compressed frames both ways
    big = root.add("x" * 100000, "y")
    assert big == "x" * 100000 + "y"


def check_errors(c):
    root = c.root
    try:
        root.divide(1, 0)
    except ZeroDivisionError as exc:
        assert "float division by zero" in str(exc)
    else:
        raise AssertionError("no ZeroDivisionError")
    for call, exc_type, text in [
        (lambda: root.greet(5), TypeError, "greet() argument 'name'"),
        (lambda: root.greet(), TypeError, "missing 1 required argument: 'name'"),
        (lambda: root.greet("a", "b"), TypeError, "takes 1 positional argument"),
        (lambda: root.greet(nom="a"), TypeError, "unexpected keyword argument 'nom'"),
        (lambda: root.nothing_here, AttributeError, "nothing_here"),
        (lambda: root.add(1, "x"), TypeError, "unsupported operand"),
    ]:
        try:
            call()
        except exc_type as exc:
            assert text in str(exc), str(exc)
        else:
            raise AssertionError("no %s" % exc_type.__name__)
    try:
        root.add = 5
    except AttributeError:
        pass
    else:
        raise AssertionError("setattr was allowed")
    assert root.add(1, 1) == 2  # still usable


def check_callbacks(c):
    root = c.root
    seen = []

    def plus_one(v):
        seen.append(threading.current_thread().name)
        return v + 1

    assert root.call_me_back(plus_one, 20) == 42
    assert len(seen) == 1
    if BIND_THREADS:  # the server's callback is addressed to the thread that waits for it
        assert seen == [threading.current_thread().name], seen
    # nested: our callback calls the server while the server waits for it
    assert root.call_me_back(lambda v: root.add(v, 100), 1) == 202
    # an exception in our callback goes through the Rust method back to us
    def fail(v):
        raise ValueError("from python %s" % v)
    try:
        root.call_me_back(fail, 3)
    except ValueError as exc:
        assert "from python 3" in str(exc)
    else:
        raise AssertionError("no ValueError")
    # the Rust server calls __add__ on our list (a proxy on its side)
    assert list(root.add([1, 2], [3])) == [1, 2, 3]


def check_objects(c):
    root = c.root
    counter = root.make_counter(10)
    assert counter.increment(5) == 15
    assert counter.increment(by=2) == 17
    assert counter.value() == 17
    inc = counter.increment
    assert inc(1) == 18
    assert "calc.Counter" in repr(counter)
    # references are released: the Rust side drops the objects (no error, no leak visible)
    for i in range(200):
        root.make_counter(i).value()
    del counter, inc
    gc.collect()
    assert root.add(1, 2) == 3


def check_threads(c):
    root = c.root
    errors = []

    def work(t):
        try:
            for i in range(50):
                assert root.add(t, i) == t + i
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def check_async(c):
    root = c.root
    res = rpyc.async_(root.add)(2, 3)
    res.wait()
    assert res.value == 5
    results = [rpyc.async_(root.add)(i, i) for i in range(20)]
    assert [r.value for r in results] == [2 * i for i in range(20)]


def check_many_connections(_c):
    conns = [connect() for _ in range(10)]
    try:
        assert [x.root.add(i, 1) for i, x in enumerate(conns)] == list(range(1, 11))
    finally:
        for x in conns:
            x.close()


CHECKS = [check_calls, check_errors, check_callbacks, check_objects, check_threads,
          check_async, check_many_connections]


def main():
    failed = False
    for check in CHECKS:
        t0 = time.monotonic()
        try:
            with connect() as c:
                check(c)
            ok, detail = True, ""
        except Exception:
            ok, detail = False, traceback.format_exc()
        failed |= not ok
        print(json.dumps({"check": check.__name__[len("check_"):], "ok": ok, "detail": detail,
                          "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
