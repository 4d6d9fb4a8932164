"""Version information of this rpyc implementation.

The numbers track the upstream release whose behaviour (and wire format) this package
reproduces. The remote end of a connection sees ``__version__`` in every serialized
exception (read at serialization time, so changing it at run time takes effect at once).
"""

from typing import Tuple

__version__: str = "6.0.2"
version: Tuple[str, ...] = tuple(__version__.split("."))
release_date: str = "2025-04-19"
