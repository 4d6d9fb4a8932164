"""What the interop client peers share (client.py, aio_sync_client.py, aio_client.py): the
checks a scenario makes, how a scenario runs and reports, and checks that several scenarios
make alike.

Standard library only, no rpyc import: the blocking peers run it under upstream rpyc
6.0.2's interpreter as well as under ours.
"""

import json
import os
import sys
import threading
import time
import traceback

DEFAULT_CLOSE_LIMIT = 5  # seconds


class Failed(Exception):
    """The scenario cannot go on (e.g. its connection is lost)."""


def short(obj, limit=160):
    try:
        text = repr(obj)
    except Exception as exc:  # a proxy whose repr fails
        text = "<repr failed: %r>" % (exc,)
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


def type_names(types):
    if isinstance(types, tuple):
        return "/".join(t.__name__ for t in types)
    return types.__name__


def own_table(conn):
    """How many of our objects the peer holds references to (``conn._local_objects``)."""
    objs = conn._local_objects
    return len(getattr(objs, "_dict", objs))


class Checks:
    """Context of one scenario: its connections, its checks and the failures they collect
    (``fail`` may be called from several threads)."""

    # a conn.close() taking longer than this many seconds is a failure (None: not checked)
    close_limit = DEFAULT_CLOSE_LIMIT

    def __init__(self):
        self.failures = []
        self.info = {}
        self.conns = []
        self.lock = threading.Lock()

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return bool(cond)

    def eq(self, got, want, what):
        if got != want:
            self.fail("%s: got %s, want %s" % (what, short(got), short(want)))
            return False
        return True

    def raises(self, exc_types, what, fn, *args, **kwargs):
        """Call fn; expect one of exc_types.  Returns the exception (or None).  A lost
        connection (EOFError, ConnectionError) aborts the scenario unless it was expected."""
        try:
            result = fn(*args, **kwargs)
        except exc_types as exc:
            lost = isinstance(exc, (EOFError, ConnectionError))
            wanted = exc_types if isinstance(exc_types, tuple) else (exc_types,)
            if lost and not any(issubclass(t, (EOFError, ConnectionError)) for t in wanted):
                raise Failed("%s: connection lost: %s: %s" % (what, type(exc).__name__, exc))
            return exc
        except BaseException as exc:
            msg = "%s: raised %s: %s, want %s" % (what, type(exc).__name__, short(str(exc)),
                                                 type_names(exc_types))
            if isinstance(exc, (EOFError, ConnectionError)):
                raise Failed(msg + " (connection lost: scenario aborted)")
            self.fail(msg)
            return None
        self.fail("%s: returned %s, want %s" % (what, short(result), type_names(exc_types)))
        return None

    def close_all(self):
        timed_out = any("TimeoutError" in f or "result expired" in f for f in self.failures)
        for conn in self.conns:
            if timed_out:  # the peer is not answering: do not wait the full timeout in close()
                try:
                    conn._config["sync_request_timeout"] = 1
                except Exception:
                    pass
            t0 = time.monotonic()
            try:
                conn.close()
            except Exception as exc:
                self.fail("conn.close() raised %r" % (exc,))
            dt = time.monotonic() - t0
            if self.close_limit is not None and dt > self.close_limit:
                self.fail("conn.close() took %.1fs" % dt)
        self.conns = []


def run_scenario(fn, run):
    """Run the scenario ``fn(run)``, then close its connections; what went wrong is in
    ``run.failures``. Returns how long it took, in seconds."""
    t0 = time.monotonic()
    try:
        fn(run)
    except Failed as exc:
        run.fail(str(exc))
    except Exception as exc:
        run.fail(unexpected(exc))
    finally:
        run.close_all()
    return round(time.monotonic() - t0, 3)


def unexpected(exc):
    return "unexpected %s: %s\n%s" % (type(exc).__name__, short(str(exc), 400),
                                      traceback.format_exc()[-3000:])


def print_results_and_exit(impl, names, run_one, args):
    """The peer's output: its implementation, then one JSON line per scenario; exit status
    0 if every scenario passed, 1 otherwise."""
    print(json.dumps({"impl": impl}), flush=True)
    all_ok = True
    for name in names:
        result = run_one(name, args)
        all_ok &= result["ok"]
        print(json.dumps(result, default=repr), flush=True)
    sys.stdout.flush()
    os._exit(0 if all_ok else 1)  # do not wait for stray non-daemon threads


# =================================================================================
# checks that scenarios of several peers make alike (blocking clients)
# =================================================================================

def context_manager(run):
    """A remote class-based context manager and a contextlib one: __enter__'s value, and
    how __exit__ saw a clean exit, an exception (propagated) and a suppressed one."""
    root = run.connect().root
    with root.ctx() as v:
        run.eq(v, "entered", "__enter__ value")
    run.eq(root.ctx_log(), ("enter", "exit-ok"), "log after clean exit")
    try:
        with root.ctx():
            raise KeyError("inside")
    except KeyError as exc:
        run.eq(exc.args, ("inside",), "propagated exception args")
    else:
        run.fail("exception inside the with-block was swallowed")
    run.eq(root.ctx_log()[2:], ("enter", "exit-exc"), "log after exception")
    try:
        with root.ctx(True):
            raise KeyError("suppressed")
    except KeyError:
        run.fail("__exit__ returned True but the exception propagated")
    run.eq(root.ctx_log()[4:], ("enter", "exit-exc"), "log after suppressed exception")
    with root.gen_ctx() as v:
        run.eq(v, "gen-entered", "contextlib __enter__ value")
    run.eq(root.ctx_log()[6:], ("gen-enter", "gen-ok"), "contextlib clean exit")
    try:
        with root.gen_ctx():
            raise KeyError("gen")
    except KeyError:
        pass
    else:
        run.fail("contextlib: exception swallowed")
    run.eq(root.ctx_log()[8:], ("gen-enter", "gen-exc"), "contextlib exit with exception")


def callback_chain(run, root, inc):
    """50 callbacks in one call, a nested ping-pong, an exception of ours the server catches
    and one it does not (returned, or None if it was not raised)."""
    run.eq(root.call_n(inc, 50), True, "50 callbacks in one call")

    def pp(n):
        return root.ping_pong(pp, n)

    run.eq(root.ping_pong(pp, 6), 6, "nested ping-pong depth 6 (our callback calls the server)")

    def bad():
        raise ValueError("from client")

    run.eq(root.call_catch(bad), "caught:from client", "the server caught our ValueError")

    def bad_x(x):
        raise ValueError("cb fail %d" % x)

    exc = run.raises(ValueError, "uncaught callback exception", root.call_me, bad_x, 7)
    if exc is not None:
        run.check("cb fail 7" in str(exc), "message lost: %s" % short(str(exc)))
    return exc


def generators(run, root):
    """Remote generators: list(), next() to exhaustion, remote objects as items, and an
    exception raised after the first item."""
    run.eq(list(root.gen(5)), [0, 1, 2, 3, 4], "list(remote generator)")
    run.eq(list(root.gen(0)), [], "empty generator")
    g = root.gen(2)
    run.eq(next(g), 0, "next 1")
    run.eq(next(g), 1, "next 2")
    run.raises(StopIteration, "next after exhaustion", next, g)
    run.eq([o.value for o in root.gen_objs(4)], [0, 1, 2, 3], "generator of remote objects")
    it = root.gen_fail()
    run.eq(next(it), 1, "gen_fail first item")
    exc = run.raises(ValueError, "gen_fail second item", next, it)
    if exc is not None:
        run.check("gen failed" in str(exc), "message: %s" % short(str(exc)))


def custom_exception(run, exc, generic_exception):
    """``fail_custom("custom msg", 42)``'s exception (or None): the server's InteropError,
    which the client cannot import, as an rpyc GenericException with its args and attrs."""
    if exc is None:
        return
    run.check(isinstance(exc, generic_exception),
              "custom exception is not a GenericException: %s" % (type(exc).__mro__,))
    run.check("InteropError" in type(exc).__name__, "class name %r" % type(exc).__name__)
    run.eq(exc.args, ("custom msg", 42), "custom exception args")
    run.eq(getattr(exc, "code", None), 42, "custom exception attribute")


def tick_recorder(n):
    """(cb, ticks, done): ``cb(i)`` appends i to ticks (and returns it); done is set at the
    n-th call."""
    ticks = []
    done = threading.Event()

    def cb(i):
        ticks.append(i)
        if len(ticks) == n:
            done.set()
        return i

    return cb, ticks, done


def settled_own_table(conn):
    """``own_table(conn)`` after serving what the peer sent for 50 ms (its releases)."""
    conn.poll_all(0.05)
    return own_table(conn)
