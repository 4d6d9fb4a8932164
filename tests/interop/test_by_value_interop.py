"""By-value data never reaches an upstream peer (docs/by-value.md#against-upstream): every
by-value API used against upstream rpyc 6.0.2, in both directions, falls back to today's
behaviour (brine for tuples of simple values, proxies for the rest, pickle for ``obtain``
where allowed), and a recording relay proves that no frame carries the by-value label, the
by-value tags or ``HANDLE_OBTAIN``. Between two rpyc-rs peers the same relay sees them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wire_recorder as wire  # noqa: E402

from procs import stop_group  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

HANDLE_OBTAIN = 66

SERVER = r"""
import sys
import rpyc
from rpyc.utils.server import ThreadedServer

returns_by_value = getattr(rpyc, "returns_by_value", lambda f: f)
by_value = getattr(rpyc, "by_value", lambda v: v)

class Svc(rpyc.Service):
    def exposed_records(self, n):
        return [{"id": i, "name": "r%d" % i} for i in range(n)]

    @returns_by_value
    def exposed_decorated(self):
        return {"a": [1, 2]}

    def exposed_marked(self):
        return by_value([1, (2, 3)])

    def exposed_marked_tuple(self):
        return by_value((1, "two", 3.0))

    def exposed_describe(self, value):
        return (type(value).__name__, repr(value))

CONFIG = {"allow_pickle": True, "allow_public_attrs": True, "by_value_types": (set,)}
if sys.argv[1:] == ["aio"]:  # (ours only) the same service on an rpyc.aio server
    import asyncio
    import rpyc.aio

    async def main():
        srv = await rpyc.aio.serve(Svc, hostname="127.0.0.1", port=0, protocol_config=CONFIG)
        print("PORT %d" % srv.port, flush=True)
        await srv.serve_forever()

    asyncio.run(main())
else:
    srv = ThreadedServer(Svc, port=0, hostname="127.0.0.1", protocol_config=CONFIG)
    print("PORT %d" % srv.port, flush=True)
    srv.start()
"""

CLIENT = r"""
import json, sys
import rpyc
from rpyc.utils.classic import obtain

by_value = getattr(rpyc, "by_value", lambda v: v)
conn = rpyc.connect("127.0.0.1", int(sys.argv[1]), config={
    "allow_pickle": True, "allow_public_attrs": True, "by_value_types": (list,)})
conn.ping()
conn.ping()
root = conn.root
out = {"features": sorted(getattr(conn, "_peer_features", ()))}
records = root.records(3)
out["records"] = [dict(r) for r in obtain(records)]
out["decorated"] = sorted(root.decorated()["a"])
out["decorated_is_proxy"] = isinstance(root.decorated(), rpyc.core.netref.BaseNetref)
out["marked"] = [root.marked()[0], tuple(root.marked()[1])]
out["marked_tuple"] = list(root.marked_tuple())
out["describe_list"] = root.describe(by_value([1, 2]))[0]
out["describe_config"] = root.describe([3])[0]
out["describe_tuple"] = list(root.describe(by_value((1, 2))))
out["describe_dict"] = root.describe(by_value({"k": 1}))[0]
conn.ping("end")
conn.close()
print(json.dumps(out))
"""

AIO_CLIENT = r"""
import asyncio, json, sys
import rpyc
import rpyc.aio

async def main():
    port = int(sys.argv[1])
    out = {}
    async with rpyc.aio.connect("127.0.0.1", port, config={"allow_pickle": True}) as conn:
        await conn.root.records(0)
        out["features"] = sorted(conn._peer_features)
        out["records"] = await rpyc.aio.obtain(conn.root.records(3))
    async with rpyc.aio.connect("127.0.0.1", port) as conn:
        try:
            await rpyc.aio.obtain(conn.root.records(1))
            out["refused"] = None
        except ValueError as exc:
            out["refused"] = str(exc)
    print(json.dumps(out))

asyncio.run(main())
"""


def _start_server(interop, role, kind="threaded"):
    proc = subprocess.Popen([interop.python(role), "-u", "-c", SERVER, kind], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=interop.peer_env(role),
                            start_new_session=True)
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        stop_group(proc, wait=2)
        pytest.fail("the %s server did not start: %s" % (role, proc.stderr.read().decode()[-2000:]))
    return proc, int(line.split()[1])


def _run(interop, client, server, kind="threaded", script=CLIENT):
    srv, port = _start_server(interop, server, kind)
    relay = wire.Relay(port)
    try:
        proc = subprocess.run([interop.python(client), "-c", script, str(relay.port)],
                              capture_output=True, text=True, timeout=60, env=interop.peer_env(client))
        relay.wait_finished(5)
    finally:
        stuck = relay.close()
        stop_group(srv, wait=2)
    assert not stuck
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    c2s, s2c, problems = [], [], []
    for rec in relay.recordings:  # (every connection the client made)
        frames, found = wire.parse_stream(rec.c2s, 0)
        c2s += frames
        problems += found
        frames, found = wire.parse_stream(rec.s2c, 0)
        s2c += frames
        problems += found
    return result, c2s, s2c, problems


def _by_value_frames(frames):
    """Frames carrying by-value data (a box of label 5, or by-value tags that upstream's
    brine cannot decode) or ``HANDLE_OBTAIN``."""
    return [f for f in frames
            if f.error is not None or (f.mtype == 1 and f.handler == HANDLE_OBTAIN)]


EXPECTED_COMMON = {
    "records": [{"id": i, "name": "r%d" % i} for i in range(3)],
    "decorated": [1, 2],
    "marked": [1, [2, 3]],
    "marked_tuple": [1, "two", 3.0],
}


def _check_common(result):
    for key, value in EXPECTED_COMMON.items():
        assert json.loads(json.dumps(result[key])) == value, (key, result[key])


def test_our_client_against_upstream_server(interop):
    result, c2s, s2c, problems = _run(interop, "ours", "upstream")
    _check_common(result)
    assert result["features"] == []
    assert result["decorated_is_proxy"]
    # marked arguments reach upstream as proxies (a list) or brine (a tuple)
    assert result["describe_tuple"] == ["tuple", "(1, 2)"]
    assert result["describe_list"] != "list" and result["describe_config"] != "list"
    assert not problems
    assert wire.violations_towards_upstream(c2s, hello_allowed=True) == []
    assert _by_value_frames(c2s) == []


@pytest.mark.parametrize("kind", ["threaded", "aio"])
def test_upstream_client_against_our_server(interop, kind):
    result, c2s, s2c, problems = _run(interop, "upstream", "ours", kind)
    _check_common(result)
    assert result["describe_tuple"] == ["tuple", "(1, 2)"]
    assert result["decorated_is_proxy"]  # @returns_by_value: a proxy for upstream
    assert not problems
    # our server's answers: upstream brine and proxies only
    assert wire.violations_towards_upstream(s2c, hello_allowed=False) == []
    assert _by_value_frames(s2c) == []


@pytest.mark.parametrize("kind", ["threaded", "aio"])
def test_between_rpyc_rs_peers_by_value_is_used(interop, kind):
    result, c2s, s2c, problems = _run(interop, "ours", "ours", kind)
    _check_common(result)
    assert "by_value" in result["features"]
    assert not result["decorated_is_proxy"]  # @returns_by_value: a copy
    # marked arguments and config types arrive as real containers
    assert result["describe_list"] == "list" and result["describe_config"] == "list"
    assert result["describe_dict"] == "dict"
    # the relay sees the new label and HANDLE_OBTAIN (obtain without pickle)
    assert _by_value_frames(s2c) and _by_value_frames(c2s)


def test_aio_obtain_against_upstream_server_takes_the_pickle_path(interop):
    result, c2s, s2c, problems = _run(interop, "ours", "upstream", script=AIO_CLIENT)
    assert result["features"] == []
    assert result["records"] == EXPECTED_COMMON["records"]  # pickled: this side allows it
    assert "allow_pickle" in result["refused"]  # and only then
    assert not problems
    assert wire.violations_towards_upstream(c2s, hello_allowed=True) == []
    assert _by_value_frames(c2s) == []


@pytest.mark.parametrize("kind", ["threaded", "aio"])
def test_aio_obtain_between_rpyc_rs_peers_needs_no_pickle(interop, kind):
    result, c2s, s2c, problems = _run(interop, "ours", "ours", kind, script=AIO_CLIENT)
    assert "by_value" in result["features"]
    assert result["records"] == EXPECTED_COMMON["records"]
    assert result["refused"] is None  # data: by value, no pickle needed
    assert _by_value_frames(c2s) and _by_value_frames(s2c)
