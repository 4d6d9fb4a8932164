"""Every interop scenario, in every direction (client impl -> server impl) and server mode.

Test ids read ``<client>-<server>-<mode>-<scenario>``:

* ``ours-upstream-*``     our client against the upstream 6.0.2 server;
* ``upstream-ours-*``     the upstream client against our server;
* ``ours-ours-*``         both ends ours;
* ``upstream-upstream-*`` control run (only with RPYC_INTEROP_CONTROL=1): validates the
                          scenarios themselves against the reference implementation.

Modes: ``default`` (default protocol config), ``bind_threads`` (``bind_threads=True`` on both
peers), ``classic`` (classic SlaveService server, ``rpyc.classic.connect`` client).
The scenarios live in tests/peers/client.py; their list in tests/peers/catalog.py.
"""


def test_scenario(interop, interop_case):
    interop.check_scenario(interop_case)
