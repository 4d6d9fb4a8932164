"""Command-line programs (``rpyc_classic``, ``rpyc_registry``)."""
