#!/usr/bin/env python
"""RPyC registry server; the program is rpyc.cli.rpyc_registry (see its --help)."""
from rpyc.cli.rpyc_registry import *  # noqa: F401,F403


if __name__ == "__main__":
    main()  # noqa: F405
