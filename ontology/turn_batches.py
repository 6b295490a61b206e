"""Work that coroutines ask for in the same turn of the event loop, done together at its
next turn: the mechanism under ontology.autopipeline (Redis commands in one pipeline) and
ontology.db_async.TogetherOnOneTrip (calls on one trip to a database thread).

A subclass says how a batch is done (`_run`: the items in, one outcome each, `Failed`
for an item's own error), or how it is launched (`_launch`: db_async.TogetherOnOneTrip
hands it to a thread, which settles it); `submit` queues an item and answers its
future. Batches of later turns do not wait for one still running. If the batch as a
whole fails, each item fails with its error; if it is cancelled (the loop closes), each
item's future is cancelled, so nobody waits forever. A caller cancelled meanwhile is
skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, NamedTuple


class Failed(NamedTuple):
    """An item's own error, as `_run` gives it."""

    error: Exception


class TurnBatcher:
    def __init__(self) -> None:
        self._queued: list[tuple[Any, asyncio.Future]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task] = set()
        self.batches = 0  # how many were done (for tests and benchmarks)
        self.largest = 0  # the most items one batch carried

    def submit(self, item: Any) -> asyncio.Future:
        """Queue the item for this turn's batch; the future of its outcome."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._queued is None or self._loop is not loop:
            self._queued, self._loop = [], loop
            self._launch(loop, self._queued)
        self._queued.append((item, future))
        return future

    def _launch(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        """Have the batch done from the loop's next turn: by `_run`, in a task."""
        # in a context of its own: not that of whoever queued first
        task = loop.create_task(self._do(batch), context=contextvars.Context())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _taken(self, batch: list) -> list[Any]:
        """The batch's items, as its work begins: what is queued from here on goes in the
        next batch."""
        if self._queued is batch:
            self._queued = None
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        return [item for item, _ in batch]

    @staticmethod
    def _settle(batch: list[tuple[Any, asyncio.Future]], outcomes: list[Any]) -> None:
        """Each item's outcome to its future (a caller cancelled meanwhile is skipped)."""
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Failed):
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome)

    @staticmethod
    def _fail(batch: list[tuple[Any, asyncio.Future]], error: BaseException) -> None:
        """The batch as a whole failed: each item with its error."""
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def _run(self, items: list[Any]) -> list[Any]:
        raise NotImplementedError

    async def _do(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        items = self._taken(batch)
        try:
            outcomes = await self._run(items)
        except Exception as error:
            self._fail(batch, error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        self._settle(batch, outcomes)
