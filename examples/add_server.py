"""The service from the README: `python examples/add_server.py [--port N]`."""
import argparse

import rpyc
from rpyc.utils.server import ThreadedServer


class MyService(rpyc.Service):
    def on_connect(self, conn):
        pass

    def on_disconnect(self, conn):
        pass

    def exposed_add(self, x, y):
        return x + y

    def exposed_call_me_back(self, func, value):
        # a callback: the server calls a function that lives in the client
        return func(value) * 2


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18861)
    args = parser.parse_args()
    server = ThreadedServer(MyService, port=args.port)
    server._listen()
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    server.start()
