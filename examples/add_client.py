"""Client for examples/add_server.py: `python examples/add_client.py [--port N]`."""
import argparse

import rpyc

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=18861)
args = parser.parse_args()

with rpyc.connect("localhost", args.port) as conn:
    print("add(5, 10) =", conn.root.add(5, 10))
    print("callback   =", conn.root.call_me_back(lambda v: v + 1, 20))
    remote_list = conn.root.add([1, 2], [3])  # lists travel by reference: a netref comes back
    print("remote list:", remote_list, "len", len(remote_list))
    result = rpyc.async_(conn.root.add)(2, 3)
    print("async add  =", result.value)
