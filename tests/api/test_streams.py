"""Streamed answers: a quiet stream gets comment lines and is never cut short, and a follower
whose events are never read leaves its thread when its run ends."""

import asyncio

from api.keepalive import COMMENT, with_keep_alive


async def test_silence_gets_comments_and_every_chunk_still_arrives_in_order():
    release = asyncio.Event()
    closed = []

    async def body():
        try:
            yield b"data: 1\n\n"
            await release.wait()  # a long tool call
            yield b"data: 2\n\n"
        finally:
            closed.append(True)

    stream = with_keep_alive(body(), every=0.01)
    got = [await anext(stream)]
    while len(got) < 3:
        got.append(await anext(stream))
    assert got == [b"data: 1\n\n", COMMENT, COMMENT]
    release.set()
    rest = [chunk async for chunk in stream]
    assert rest[-1] == b"data: 2\n\n" and set(rest[:-1]) <= {COMMENT}
    assert closed == [True]


async def test_a_client_that_leaves_closes_the_body():
    closed = []

    async def body():
        try:
            yield b"data: 1\n\n"
            await asyncio.Event().wait()  # never ends by itself
        finally:
            closed.append(True)

    stream = with_keep_alive(body(), every=10)
    assert await anext(stream) == b"data: 1\n\n"
    await stream.aclose()
    assert closed == [True]


async def test_a_follower_whose_events_are_never_read_leaves_when_its_run_ends():
    from api.follow import ThreadFollower
    from chat.fanout import local_fanout

    fanout = local_fanout()
    follower = await ThreadFollower(4242).__aenter__()
    follower.expect("run-1")
    await fanout.publish(4242, {"type": "delta", "run_id": "run-1", "seq": 1, "text": "Hi"})
    await fanout.publish(
        4242, {"type": "run.completed", "run_id": "run-2", "seq": 9}
    )  # not its run
    await fanout.publish(4242, {"type": "run.completed", "run_id": "run-1", "seq": 2})
    await fanout.publish(4242, {"type": "delta", "run_id": "run-3", "seq": 1, "text": "next"})
    assert follower.inbox.qsize() == 3  # nothing after its run's end reaches it
    assert [e["seq"] async for e in follower.run_events("run-1")] == [1, 2]
