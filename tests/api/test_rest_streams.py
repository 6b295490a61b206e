"""The JSON API's Server-Sent Events: a turn streamed as it is written, stopped midway,
resumed from the durable log, followed live; in-process through Django's async handler
(real daphne processes: test_rest_daphne.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from ontology.scoping import group_scope
from tests.api.test_rest import World, call, error_of, world

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]
SLOW = "sim-gpt@slow;ttft_ms=0;tps=60;words=150"
TIMEOUT = 10


def parse_event(block: str) -> dict:
    fields = dict(line.split(": ", 1) for line in block.split("\n") if line)
    event = json.loads(fields["data"])
    assert fields["event"] == event["type"]
    assert fields.get("id") == (str(event["seq"]) if "seq" in event else None)
    return event


async def events_of(
    response, *, until: tuple[str, ...] = ("run.completed", "run.stopped", "error")
):
    """The stream's events, read as they come, up to the first of `until`."""
    assert response["Content-Type"].startswith("text/event-stream")
    buffer = ""
    async for chunk in response.streaming_content:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event = parse_event(block)
            yield event
            if event["type"] in until:
                return


async def collect(events) -> list[dict]:
    return [event async for event in events]


def seqs(events) -> list[int]:
    return [e["seq"] for e in events if "seq" in e]


def text_of(events) -> str:
    return "".join(e["text"] for e in events if e["type"] == "delta")


async def stored(w: World, message_id: str) -> Message:
    @database_sync_to_async
    def read():
        with group_scope(w.a.group):
            return Message.objects.get(pk=message_id)

    return await read()


async def post_stream(w: World, content: str = "Tell me a story"):
    return await call(
        "POST",
        f"/threads/{w.thread.pk}/messages",
        w.secrets["author"],
        {"content": content, "stream": True, "client_id": "c1"},
    )


async def test_a_streamed_turn_sends_the_question_then_every_event_in_order(sim):
    w = await world()
    response = await post_stream(w, "Hello?")
    assert response.status_code == 200
    events = await collect(events_of(response))
    created, *run = events
    assert created["type"] == "message.created"
    assert (created["message"]["content"], created["message"]["client_id"]) == ("Hello?", "c1")
    assert run[0]["type"] == "run.started" and run[-1]["type"] == "run.completed"
    assert seqs(run) == list(range(1, len(run) + 1))
    answer = await stored(w, run[0]["message_id"])
    assert (answer.status, answer.content) == ("complete", text_of(run))


async def test_stop_midstream_ends_the_run_and_keeps_the_partial_answer(sim):
    w = await world(SLOW)
    response = await post_stream(w)
    stream = events_of(response)
    events = [event async for event in _until(stream, "delta")]
    stop = await call("POST", f"/threads/{w.thread.pk}/stop", w.secrets["author"])
    assert (stop.status_code, stop.json()["stopped"]) == (202, True)
    assert stop.json()["run_id"] == events[1]["run_id"]
    events += await collect(stream)
    assert events[-1]["type"] == "run.stopped"
    assert seqs(events) == list(range(1, len(seqs(events)) + 1))
    answer = await stored(w, events[1]["message_id"])
    assert (answer.status, answer.content) == ("stopped", text_of(events))
    assert 0 < len(answer.content.split()) < 150
    again = await call("POST", f"/threads/{w.thread.pk}/stop", w.secrets["author"])
    assert (again.status_code, again.json()["stopped"]) == (200, False)


async def _until(stream, kind: str):
    async for event in stream:
        yield event
        if event["type"] == kind:
            return


async def test_a_second_post_while_a_run_streams_is_busy(sim):
    w = await world(SLOW)
    stream = events_of(await post_stream(w))
    await collect(_until(stream, "delta"))
    busy = await call(
        "POST", f"/threads/{w.thread.pk}/messages", w.secrets["author"], {"content": "Again"}
    )
    assert (busy.status_code, error_of(busy)) == (409, "busy")
    await call("POST", f"/threads/{w.thread.pk}/stop", w.secrets["author"])
    assert (await collect(stream))[-1]["type"] == "run.stopped"


async def test_a_finished_run_resumes_after_a_seq_as_json_or_as_a_stream(sim):
    w = await world()
    events = await collect(events_of(await post_stream(w)))
    run = [e for e in events if "seq" in e]
    path = f"/threads/{w.thread.pk}/runs/{run[0]['run_id']}/events"

    listed = (await call("GET", f"{path}?after_seq=3", w.secrets["owner"])).json()
    assert (listed["data"], listed["done"]) == (run[3:], True)
    streamed = await call(
        "GET", path, w.secrets["author"], **{"Accept": "text/event-stream", "Last-Event-ID": "3"}
    )
    assert await collect(events_of(streamed)) == run[3:]
    unknown = await call(
        "GET",
        f"/threads/{w.thread.pk}/runs/00000000-0000-0000-0000-000000000001/events",
        w.secrets["author"],
    )
    assert (unknown.status_code, error_of(unknown)) == (404, "not_found")


async def test_a_run_is_followed_live_from_its_log_with_no_gap_and_no_duplicate(sim):
    """A second client joins midway and follows the run from seq 0 while it streams."""
    w = await world(SLOW)
    stream = events_of(await post_stream(w))
    first = await collect(_until(stream, "delta"))
    run_id = first[1]["run_id"]
    follower = await call(
        "GET",
        f"/threads/{w.thread.pk}/runs/{run_id}/events?stream=true&after_seq=0",
        w.secrets["owner"],
    )
    poster, followed = await asyncio.wait_for(
        asyncio.gather(collect(stream), collect(events_of(follower))), TIMEOUT * 3
    )
    posted = [e for e in first + poster if "seq" in e]
    assert followed == posted
    assert followed[-1]["type"] == "run.completed"
