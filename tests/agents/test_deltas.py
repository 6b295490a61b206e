"""Streamed text in frames: the first token at once, then what arrived, one frame per interval.

Both the network reads (agents/providers/sse.py) and the deltas (agents/engine/deltas.py)
are paced by PARLEY_STREAM_FRAME_MS; the text is the same whatever the pacing."""

import asyncio
import time

import pytest

from agents.engine.deltas import DeltaFrames
from agents.providers.base import Finished, TextDelta, UsageReport
from agents.providers.sse import carries_text, hold_reads, merged
from agents.tokens import count_tokens
from chat.models import Message
from tests.agents.conftest import WIRES
from tests.agents.test_engine import agent_props, reload_message, run_agent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_a_paced_answer_streams_in_frames_with_the_first_token_alone(
    sim, conversation, settings, provider, model
):
    settings.PARLEY_STREAM_FRAME_MS = 250
    convo = await conversation(agent_props(provider, f"{model}@text;words=16;tps=10;ttft_ms=0"))
    _, result, sink = await run_agent(convo)

    deltas = [d["text"] for d in sink.of("delta")]
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.content) == (Message.Status.COMPLETE, "".join(deltas))
    tokens = count_tokens(message.content)
    assert count_tokens(deltas[0]) == 1  # nothing waits for the first token (100 ms apart)
    assert 3 <= len(deltas) <= tokens // 2  # 100 ms a token, 250 ms a frame


@pytest.mark.parametrize(("provider", "model"), WIRES)
async def test_the_end_of_an_answer_is_not_held_for_the_interval(
    sim, conversation, settings, provider, model
):
    """After the first read the next is held for the frame interval, but not past the end
    of the response's body: with a minute-long interval, an answer whose tokens come 20 ms
    apart (so several reads) still ends as soon as its last token is here."""
    settings.PARLEY_STREAM_FRAME_MS = 60_000
    convo = await conversation(agent_props(provider, f"{model}@text;words=8;tps=50;ttft_ms=0"))
    _, result, sink = await asyncio.wait_for(run_agent(convo), timeout=20)

    deltas = [d["text"] for d in sink.of("delta")]
    message = await reload_message(convo, result.message_id)
    assert (message.status, message.content) == (Message.Status.COMPLETE, "".join(deltas))
    assert len(deltas) == 2  # the first token alone, then the rest at the body's end


async def test_frames_off_send_each_read_as_it_comes(sim, conversation, settings):
    settings.PARLEY_STREAM_FRAME_MS = 0
    convo = await conversation(agent_props("simulator", "sim-gpt@text;words=10;tps=12;ttft_ms=0"))
    _, result, sink = await run_agent(convo)

    deltas = [d["text"] for d in sink.of("delta")]
    message = await reload_message(convo, result.message_id)
    assert message.content == "".join(deltas)
    assert len(deltas) > count_tokens(message.content) // 2  # 80 ms apart: read one by one


async def test_reads_after_text_wait_out_the_interval_and_never_before_it():
    handed_at = time.monotonic()
    await hold_reads(handed_at, 0.05)
    assert time.monotonic() - handed_at >= 0.045
    late = time.monotonic() - 0.2  # the interval is already over: no wait at all
    await hold_reads(late, 0.05)
    assert time.monotonic() - late < 0.25
    assert carries_text([UsageReport(input_tokens=1), TextDelta("x")])
    assert not carries_text([UsageReport(input_tokens=1), Finished("stop")])


def test_one_reads_text_is_joined_and_other_events_keep_their_place():
    events = [
        TextDelta("a"),
        TextDelta("b"),
        UsageReport(output_tokens=2),
        TextDelta("c"),
        TextDelta("d"),
        Finished("stop"),
    ]
    assert merged(events) == [
        TextDelta("ab"),
        UsageReport(output_tokens=2),
        TextDelta("cd"),
        Finished("stop"),
    ]


async def test_frames_hold_text_until_due_and_drain_everything_on_close():
    sent: list[tuple[str, float]] = []
    second = asyncio.Event()
    lock = asyncio.Lock()
    started = time.monotonic()

    async def send(text):
        sent.append((text, time.monotonic() - started))
        if len(sent) == 2:
            second.set()

    frames = DeltaFrames(send, interval=0.05, lock=lock)
    await frames.add("a")  # at once
    await frames.add("b")  # held: a frame went out just now
    await frames.add("c")
    assert [t for t, _ in sent] == ["a"]
    await asyncio.wait_for(second.wait(), 5)  # the timer sends the held text when it is due
    await frames.add("d")
    await frames.drain()

    assert [t for t, _ in sent] == ["a", "bc", "d"]
    assert sent[1][1] - sent[0][1] >= 0.045


async def test_a_stop_drains_what_is_pending_and_no_frame_follows():
    sent: list[str] = []
    more = asyncio.Event()
    lock = asyncio.Lock()

    async def send(text):
        sent.append(text)
        if len(sent) > 2:
            more.set()

    frames = DeltaFrames(send, interval=0.05, lock=lock)
    await frames.add("a")
    await frames.add("b")
    async with lock:  # what the run's stop does before it cancels the stream
        await frames.drain_locked()
    assert sent == ["a", "b"]
    await frames.add("c")  # the stream's last token, read before the cancel reached it
    with pytest.raises(TimeoutError):  # past the moment the held frame was due: nothing
        await asyncio.wait_for(more.wait(), 0.15)
    assert sent == ["a", "b"]


async def test_a_frame_that_fails_on_its_timer_fails_the_stream():
    lock = asyncio.Lock()
    failed = asyncio.Event()

    async def send(text):
        if text != "a":
            failed.set()
            raise RuntimeError("the sink is gone")

    frames = DeltaFrames(send, interval=0.05, lock=lock)
    await frames.add("a")
    await frames.add("b")  # held; its timer's send fails
    await asyncio.wait_for(failed.wait(), 5)
    with pytest.raises(RuntimeError, match="sink is gone"):
        await frames.drain()


async def test_text_a_moment_short_of_its_frames_time_goes_at_once():
    """The reads are paced to the same interval, counted from a moment earlier: such text
    goes out with no timer (the frame before it is 40 ms old at the least)."""
    sent: list[str] = []
    lock = asyncio.Lock()

    async def send(text):
        sent.append(text)

    frames = DeltaFrames(send, interval=0.05, lock=lock)
    await frames.add("a")
    frames._next_at = time.monotonic() + 0.005  # 45 ms on: the paced read's next text
    await frames.add("b")
    assert sent == ["a", "b"]
    await frames.add("c")  # 0 ms on: held for its frame
    assert sent == ["a", "b"]
    await frames.drain()
    assert sent == ["a", "b", "c"]
