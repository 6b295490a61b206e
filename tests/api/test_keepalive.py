"""A quiet Server-Sent Events stream gets comment lines, and its body is never cut short."""

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
