"""A program waiting on a run it started: the thread's events in this process, as they happen.

A run started here (chat.turns) lives in this process, and its events reach every
listener of its thread through the local fan-out before anything else hears them, so a
follower that joins before the run starts misses none (its inbox is unbounded: one run's
events, read as fast as the program takes them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from chat.fanout import local_fanout
from chat.runs import FINAL_EVENTS


class ThreadFollower:
    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.run_id: str | None = None
        self._ended: set[str] = set()

    async def deliver(self, event: dict[str, Any]) -> None:
        self.inbox.put_nowait(event)
        if event["type"] in FINAL_EVENTS and "run_id" in event:
            self._ended.add(event["run_id"])
            if event["run_id"] == self.run_id:
                self._leave()  # its run is over: nothing more to hear, read or not

    def expect(self, run_id: Any) -> None:
        """Name the run followed: once its final event is in, the follower leaves the thread
        by itself, so one whose events are never read (its client went away before the
        stream began) holds nothing past the run."""
        self.run_id = str(run_id)
        if self.run_id in self._ended:
            self._leave()

    def _leave(self) -> None:
        local_fanout().discard(self.thread_id, self)

    async def __aenter__(self) -> ThreadFollower:
        local_fanout().add(self.thread_id, self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._leave()

    async def run_events(self, run_id: Any) -> AsyncIterator[dict[str, Any]]:
        """The run's events in order, its final one (run.completed, run.stopped, error) last."""
        self.expect(run_id)
        run_id = str(run_id)
        while True:
            event = await self.inbox.get()
            if event.get("run_id") != run_id:
                continue  # the thread's other news (a title, a question) is not the run's
            yield event
            if event["type"] in FINAL_EVENTS:
                return
