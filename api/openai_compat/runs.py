"""One answer's events for the endpoint, wherever the run lives.

* `RequestTurn`: a stateless run of the agent on the request's messages, driven here in
  its own task, so that the client leaving never cancels it half-way: the view asks it
  to stop, and it ends (metered as stopped) on its own.
* `ThreadTurn`: the last user message sent to a Parley thread (chat.turns), its answer
  followed as the browser's tabs follow it; the run belongs to the thread, so a client
  that leaves lets it finish there.

Both hand out the engine's wire events in order, the final one (run.completed,
run.stopped, error) last.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents.configuration import GroupConfiguration
from agents.engine.run import AgentRun
from api.follow import ThreadFollower
from api.openai_compat.conversation import RequestConversation
from chat.runs import FINAL_EVENTS, registry
from chat.turns import send_message
from ontology.models import Group, User

logger = logging.getLogger(__name__)

_driven: set[asyncio.Task] = set()  # stateless runs in flight (a task needs a reference)


class RequestTurn:
    def __init__(
        self,
        *,
        group: Group,
        user: User,
        conversation: RequestConversation,
        configuration: GroupConfiguration | None = None,
    ) -> None:
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.run = AgentRun(
            group=group,
            conversation=conversation,
            user=user,
            sink=self,
            configuration=configuration,
        )
        self.run_id = str(self.run.run_id)
        self.ended = False

    async def emit(self, event: dict[str, Any]) -> None:
        self._inbox.put_nowait(event)

    def start(self) -> RequestTurn:
        task = asyncio.create_task(self._drive())
        _driven.add(task)
        task.add_done_callback(_driven.discard)
        return self

    async def _drive(self) -> None:
        try:
            await self.run.execute()
        except Exception:
            logger.exception("stateless run %s broke", self.run_id)
            await self.run.fail()

    async def next_event(self) -> dict[str, Any]:
        event = await self._inbox.get()
        self.ended = event["type"] in FINAL_EVENTS
        return event

    @property
    def finish_reason(self) -> str:
        return self.run.finish_reason

    def abandon(self) -> None:
        """The client left before the end: stop the run (no one will read its answer)."""
        if not self.ended:
            self.run.stop()

    async def close(self) -> None:
        pass


class ThreadTurn:
    def __init__(self, *, thread_id: int) -> None:
        self.thread_id = thread_id
        self._follower = ThreadFollower(thread_id)
        self._events = None
        self.run_id = ""
        self.ended = False
        self._run: AgentRun | None = None

    async def start(self, *, group: Group, user: User, thread: Any, content: str) -> ThreadTurn:
        """Send the question; raises what chat.turns.send_message raises (Busy, RateLimited,
        ValidationError), having let go of the thread's events."""
        await self._follower.__aenter__()  # before the run starts, so no event is missed
        try:
            run_id, _ = await send_message(group=group, thread=thread, user=user, content=content)
        except BaseException:
            await self.close()
            raise
        self.run_id = str(run_id)
        self._follower.expect(run_id)
        self._run = registry().runs.get(thread.pk)
        self._events = self._follower.run_events(run_id)
        return self

    async def next_event(self) -> dict[str, Any]:
        event = await anext(self._events)
        self.ended = event["type"] in FINAL_EVENTS
        return event

    @property
    def finish_reason(self) -> str:
        run = self._run
        return run.finish_reason if run is not None and str(run.run_id) == self.run_id else ""

    def abandon(self) -> None:
        """The thread's answer goes on without this client, as it does for a closed tab."""

    async def close(self) -> None:
        await self._follower.__aexit__(None, None, None)
