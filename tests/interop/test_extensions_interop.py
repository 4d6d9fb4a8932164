"""rpyc-rs protocol extensions are never used with an upstream peer: against an upstream
rpyc 6.0.2 server our client learns no features (upstream echoes the hello ping) and
iterates remote containers item by item (an upstream server would answer an unknown
handler such as HANDLE_ITER_BATCH with an error, failing the iteration); against our own
server the same client negotiates batched iteration."""

import json
import subprocess

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

CLIENT = r"""
import json, sys, time
import rpyc
conn = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
conn.ping()  # the hello's answer (or echo) has arrived once this one has
remote = conn.eval("list(range(1000))")
values = list(remote)
gen = conn.eval("(i * i for i in range(5))")
print(json.dumps({
    "features": sorted(conn._peer_features),
    "ok": values == list(range(1000)) and list(gen) == [0, 1, 4, 9, 16],
    "mapping": sorted(conn.eval("{'x': 1, 'y': 2}")),
}))
conn.close()
"""


@pytest.mark.parametrize("server", ["upstream", "ours"])
def test_our_client_negotiates_only_with_rpyc_rs(interop, peer_server, server):
    srv = peer_server(server, "classic")
    proc = subprocess.run([interop.ours_python(), "-c", CLIENT, str(srv.port)], capture_output=True,
                          text=True, timeout=60, env=interop.peer_env("ours"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["mapping"] == ["x", "y"]
    assert result["features"] == ([] if server == "upstream" else ["by_value", "cancel", "iter_batch", "quiet_del", "root_class"])
