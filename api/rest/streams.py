"""Runs as Server-Sent Events, and following a run from its durable log.

Each run event goes out as `id: <seq>`, `event: <type>`, `data: <json>`, so a client that
reconnects sends `Last-Event-ID` and resumes after it. A streamed body runs after its view
returned: it reopens the group's scope itself, and a client that goes away only ends the
stream, never the run (runs belong to the process; the answer is stored either way).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import StreamingHttpResponse

from api.follow import ThreadFollower
from api.keepalive import with_keep_alive
from chat import selectors
from chat.models import AIThread
from chat.runs import FINAL_EVENTS, active_run_id
from ontology.db_async import db_call, io_call
from ontology.models import Group
from ontology.scoping import group_scope

POLL_SECONDS = 0.25  # the log is at most one flush (chat.runlog.FLUSH_SECONDS) behind a run


def sse(event: dict[str, Any]) -> bytes:
    """One event as SSE; run events carry their seq as the event id."""
    head = f"id: {event['seq']}\n" if "seq" in event else ""
    data = json.dumps(event, ensure_ascii=False)
    return f"{head}event: {event['type']}\ndata: {data}\n\n".encode()


def sse_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        with_keep_alive(events), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    return response


async def turn_events(
    follower: ThreadFollower, run_id: str, created: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The question's `message.created`, then the run's events until its final one.

    `follower` joined the thread before the run started, so it has every event; it is left
    here, whether the run ended or the client went away.
    """
    try:
        yield sse(created)
        async for event in follower.run_events(run_id):
            yield sse(event)
    finally:
        await follower.__aexit__(None, None, None)


def _log_after(group: Group, thread: AIThread, run_id: str, after_seq: int) -> list[dict]:
    with group_scope(group):
        return selectors.run_events(thread=thread, run_id=run_id, after_seq=after_seq)


def _following_on(events: list[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """The events that follow `last` without a hole (a later batch may be in before an
    earlier one is): a client never gets an event while it lacks an earlier one."""
    following = []
    for event in events:
        if event["seq"] != last + 1:
            break
        following.append(event)
        last = event["seq"]
    return following


async def logged_events(
    *, group: Group, thread: AIThread, run_id: str, after_seq: int
) -> AsyncIterator[dict[str, Any]]:
    """The run's events after `after_seq` from the durable log, then as they are logged,
    until its final event; in whichever process the run streams.

    A run that holds its thread's lock is still going. One that no longer does has written
    its final event to the log before it let go (chat.runs.EventLog), so once the lock is
    gone and the log has nothing more, the run is over: it ended without a final event
    (its process died; the sweep marks the answer interrupted) and the stream ends too.
    """
    last = after_seq
    while True:
        going = await io_call(active_run_id)(thread.pk) == run_id
        events = _following_on(await db_call(_log_after)(group, thread, run_id, last), last)
        for event in events:
            yield event
            last = event["seq"]
            if event["type"] in FINAL_EVENTS:
                return
        if not events and not going:
            return
        if not events:
            await asyncio.sleep(POLL_SECONDS)


async def resumed_events(
    *, group: Group, thread: AIThread, run_id: str, after_seq: int
) -> AsyncIterator[bytes]:
    async for event in logged_events(
        group=group, thread=thread, run_id=run_id, after_seq=after_seq
    ):
        yield sse(event)
