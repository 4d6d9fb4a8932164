#!/usr/bin/env python
"""Classic RPyC server; the program is rpyc.cli.rpyc_classic (see its --help)."""
from rpyc.cli.rpyc_classic import *  # noqa: F401,F403


if __name__ == "__main__":
    main()  # noqa: F405
