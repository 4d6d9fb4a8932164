"""Helpers for the rpyc.aio tests: each test runs its coroutine on a fresh event loop with a
deadline, so a hang fails the test instead of the run."""

import asyncio
import os
from typing import Any, Awaitable, Callable

#: seconds one test's coroutine may take
DEADLINE = float(os.environ.get("RPYC_AIO_TEST_DEADLINE", "60"))


def run(main: Callable[[], Awaitable[Any]], deadline: float = DEADLINE) -> Any:
    """``asyncio.run(main())`` with a deadline."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), deadline)

    return asyncio.run(bounded())
