"""A node's kept background loops: started once, a failed round logged and tried again at
the next, cancelled and awaited on stop. No loop of a node fails in silence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("tierfed.background")

def every(name: str, interval_s: float, one_round: Callable[[], Awaitable[None]], *,
          first_at_once: bool = False) -> asyncio.Task[None]:
    """Run ``one_round`` every ``interval_s`` seconds (measured from the round's start) in a kept
    task named ``name``; a round that raises is logged under that name and the loop goes on."""

    async def loop() -> None:
        wait = 0.0 if first_at_once else interval_s
        while True:
            await asyncio.sleep(wait)
            started = time.monotonic()
            try:
                await one_round()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged, tried again next round
                log.exception("%s: background round failed", name)
            wait = max(0.05, interval_s - (time.monotonic() - started))

    return asyncio.get_running_loop().create_task(loop(), name=name)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait until it has ended (whatever it ended with: the node is stopping)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
        pass
