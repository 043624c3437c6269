"""A node's kept background loops: started once, a failed round logged and tried again at
the next, cancelled and awaited on stop. No loop of a node fails in silence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

log = logging.getLogger("tierfed.background")

# Work a request starts that its caller does not wait for (telling a change's participants
# its decision): while an HTTP endpoint collects it here, it starts once the answer has been
# sent (``after_answer``), so that it does not take the CPU from the answer itself.
class AfterAnswer:
    """What one request starts once its answer is sent. A task the request created inherits it
    (context variables are copied): what such a task adds once the answer is sent starts at once."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []
        self.sent = False


_AFTER_ANSWER: ContextVar[AfterAnswer | None] = ContextVar("after_answer", default=None)


def when_answered(start: Callable[[], None]) -> None:
    """Call ``start`` once the current request's answer has been sent, or now outside a request
    that collects such work (a background round, a test driving a node in-process)."""
    collecting = _AFTER_ANSWER.get()
    if collecting is None or collecting.sent:
        start()
    else:
        collecting.pending.append(start)


def collect_after_answer() -> AfterAnswer:
    """Make the current request collect what ``when_answered`` is given."""
    collecting = AfterAnswer()
    _AFTER_ANSWER.set(collecting)
    return collecting


async def after_answer(collecting: AfterAnswer) -> None:
    """Start what a request collected (its answer is sent); one that fails is logged, the rest start."""
    collecting.sent = True
    for start in collecting.pending:
        try:
            start()
        except Exception:  # noqa: BLE001 - recovery does what did not start
            log.exception("work after an answer failed to start")
    collecting.pending.clear()


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
