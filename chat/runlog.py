"""The durable run log: every run of this process written together, one statement per tick.

Each run's events reach the RunEvent table at most FLUSH_SECONDS after they were
emitted, or sooner when a run gets FLUSH_EVENTS ahead, in order. The writer batches
across runs: with two hundred streams that is ten inserts a second instead of
eight hundred, and the rows travel as one JSON document (one C-level dump here,
one parse in Postgres) rather than as per-row parameters. A run's final event
waits for `sync()`: the log is complete before anyone hears the run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError, connection

from agents.text import storable
from ontology.db_async import log_call
from ontology.loops import PerLoop

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1  # also how late other processes' tabs hear a run (chat.runs.EventLog)
FLUSH_EVENTS = 64
MAX_QUEUED = 200_000  # unwritten rows kept while the database is away

_INSERT = """
INSERT INTO chat_runevent (group_id, thread_id, run_id, seq, type, payload, created_at)
SELECT e.group_id, e.thread_id, e.run_id, e.seq, e.type, e.payload, now()
FROM jsonb_to_recordset(%s::jsonb)
    AS e(group_id bigint, thread_id bigint, run_id uuid, seq integer, type text, payload jsonb)
ON CONFLICT (run_id, seq) DO NOTHING
"""


def write_rows(rows: list[dict[str, Any]]) -> None:
    """Insert run events (a replayed row is skipped). Each row names its run's own group,
    as the tenant manager would: the writer serves every group of the process."""
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [json.dumps(rows, ensure_ascii=False)])


class RunLogWriter:
    """This event loop's writer of the run log (see the module docstring)."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._waiting = asyncio.Event()  # rows are pending
        self._urgent = asyncio.Event()  # write them without waiting for the tick
        self._pending_done: asyncio.Future | None = None  # resolves once the pending rows are in
        self._writing_done: asyncio.Future | None = None  # resolves once the batch in flight is in
        self._task: asyncio.Task | None = None
        self._closing = False

    def add(self, *, group_id: int, thread_id: int, event: dict[str, Any]) -> None:
        # A delta's text is already clean (the engine stores it as the answer too).
        payload = event if event["type"] == "delta" else storable(event)
        self._rows.append(
            {
                "group_id": group_id,
                "thread_id": thread_id,
                "run_id": event["run_id"],
                "seq": event["seq"],
                "type": event["type"],
                "payload": payload,
            }
        )
        self._waiting.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def write_soon(self) -> None:
        """A run got FLUSH_EVENTS ahead: write at once rather than at the tick."""
        self._urgent.set()

    async def sync(self) -> None:
        """Wait until every event added so far is in the log (written now, not at the tick)."""
        await self._written(urgent=True)

    async def flushed(self) -> None:
        """Wait until every event added so far is in the log, at the writer's own pace (the
        next tick): what a run sends to other processes' tabs waits for this, so whatever
        a tab anywhere was shown is in the log if the run's process dies."""
        await self._written(urgent=False)

    async def _written(self, *, urgent: bool) -> None:
        if self._rows:
            done = self._pending_future()
            if urgent:
                self._urgent.set()
        elif self._writing_done is not None:
            done = self._writing_done
        else:
            return
        await asyncio.shield(done)

    def _pending_future(self) -> asyncio.Future:
        if self._pending_done is None:
            self._pending_done = asyncio.get_running_loop().create_future()
        return self._pending_done

    async def close(self) -> None:
        """Write what is pending and end the writer (nothing is cancelled)."""
        self._closing = True
        self._urgent.set()
        self._waiting.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._waiting.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), FLUSH_SECONDS)
            self._waiting.clear()
            self._urgent.clear()
            rows, self._rows = self._rows, []
            done = self._pending_future()
            self._pending_done = None
            written = await self._write(rows, done)
            if self._closing and (not self._rows or not written):
                return  # closing with the database down: the sweep keeps what the messages hold

    async def _write(self, rows: list[dict[str, Any]], done: asyncio.Future) -> bool:
        self._writing_done = done
        try:
            return await self._write_batch(rows, done)
        finally:
            self._writing_done = None

    async def _write_batch(self, rows: list[dict[str, Any]], done: asyncio.Future) -> bool:
        try:
            if rows:
                await log_call(write_rows)(rows)
        except (OperationalError, InterfaceError) as problem:
            # The database is away: keep the rows, in front of anything newer, for the next
            # tick (a replayed row is skipped), up to MAX_QUEUED rows.
            logger.exception("could not write %d run events; they are written again", len(rows))
            self._rows[:0] = rows
            if len(self._rows) > MAX_QUEUED:
                dropped = len(self._rows) - MAX_QUEUED
                del self._rows[:dropped]
                logger.error("run log: dropped the %d oldest unwritten run events", dropped)
            self._waiting.set()
            done.set_exception(problem)
            done.exception()  # retrieved: a run that stopped waiting is not an error
            return False
        except Exception:
            # A row the database refuses (e.g. its group was deleted): write run by run,
            # so only the run that holds it loses its log.
            logger.exception("run log batch refused; writing it run by run")
            await self._write_each_run(rows)
        done.set_result(None)
        return True

    async def _write_each_run(self, rows: list[dict[str, Any]]) -> None:
        runs: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            runs.setdefault(row["run_id"], []).append(row)
        for run_id, run_rows in runs.items():
            try:
                await log_call(write_rows)(run_rows)
            except Exception:
                logger.exception("run %s: %d log events refused and dropped", run_id, len(run_rows))


_writers: PerLoop[RunLogWriter] = PerLoop(RunLogWriter)


def run_log() -> RunLogWriter:
    return _writers.get()


async def close_run_log() -> None:
    """Write this event loop's pending run events and end its writer."""
    writer = _writers.pop()
    if writer is not None:
        await writer.close()
