"""Catalog of interop scenarios (shared by the peer scripts and the pytest harness).

This module must stay free of any ``rpyc`` import: pytest loads it from the interpreter
that runs the test session, which may have no ``rpyc`` at all (or ours, or neither).

Every scenario is a function of ``client.py`` with the same name.  ``modes`` says which
server configurations it runs against:

* ``default``       -- ``ThreadedServer(InteropService)`` with the default protocol config;
* ``bind_threads``  -- the same with ``bind_threads=True`` on *both* peers;
* ``classic``       -- ``ThreadedServer(rpyc.SlaveService)``, client uses ``rpyc.classic.connect``.

``timeout`` bounds the client process (seconds) for one scenario.
"""

from collections import namedtuple

Scenario = namedtuple("Scenario", "name modes timeout doc")

D = ("default",)
DB = ("default", "bind_threads")
C = ("classic",)

SCENARIOS = [
    Scenario("ping", DB, 20, "conn.ping() round trip (HANDLE_PING)"),
    Scenario("service_name", D, 20, "get_service_name()/get_service_aliases() of the remote service"),
    Scenario("add", DB, 20, "conn.root.add(5, 10) and a few more plain calls"),
    Scenario("latency", D, 30, "800 sequential small requests without stalls (< 5 ms each)"),
    Scenario("brine_echo", D, 30, "echo + server-side description of every brine type/edge value"),
    Scenario("compress_threshold", D, 30, "bytes/str/tuples around the 3000-byte compression threshold"),
    Scenario("kwargs", D, 20, "positional + keyword arguments (CALL kwargs as pairs)"),
    Scenario("list_by_ref", D, 20, "remote list: len/index/assign/iterate/contains/repr/isinstance/policy"),
    Scenario("dict_by_ref", D, 20, "remote dict: getitem/setitem/contains/len/iterate/repr/policy"),
    Scenario("netref_ops", D, 20, "remote object: exposed attrs/methods, property, str/repr/hash/eq/dir/len"),
    Scenario("identity", D, 20, "object identity through LOCAL_REF in both directions"),
    Scenario("exc_builtin", D, 20, "remote ValueError/KeyError: class, args, remote traceback, version"),
    Scenario("exc_custom", D, 20, "custom exception -> GenericException subclass with args and attrs"),
    Scenario("exc_nondumpable_args", D, 20, "exception args that are not brine-dumpable travel as repr"),
    Scenario("attr_refused", D, 20, "missing/non-exposed/private attributes and setattr refused"),
    Scenario("callbacks", DB, 30, "server calls client functions; nested calls; exceptions in callbacks"),
    Scenario("client_root", DB, 20, "server uses conn.root of the client's service"),
    Scenario("generator", D, 20, "iterate remote generators, StopIteration, buffiter"),
    Scenario("context_manager", D, 20, "with conn.root.ctx() as v, with and without exceptions"),
    Scenario("async_result", DB, 30, "rpyc.async_ + AsyncResult: ready/value/wait/error/add_callback"),
    Scenario("timeouts", D, 30, "sync_request_timeout expiry, set_expiry, rpyc.timed; conn survives"),
    Scenario("threads", DB, 40, "several client threads sharing one connection"),
    Scenario("bg_serving", DB, 30, "BgServingThread + server thread calling back asynchronously"),
    Scenario("big_bytes", D, 90, "32 MiB bytes in both directions, echo and digest"),
    Scenario("netref_churn", D, 120, "10,500 netrefs (5,000 of them pipelined) created and dropped; server table back to baseline"),
    Scenario("netref_churn_reverse", D, 120, "server holds then drops 3,300 client netrefs; client table back to baseline"),
    Scenario("close", D, 30, "conn.close() is prompt, on_disconnect runs, closed is set"),
    Scenario("server_close", D, 45, "server closes the connection; client sees EOFError"),
    Scenario("classic", C, 45, "classic mode: eval/execute/namespace/modules/obtain/deliver/teleport"),
]

BY_NAME = {s.name: s for s in SCENARIOS}
MODES = ("default", "bind_threads", "classic")
