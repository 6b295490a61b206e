"""Server-Sent Events that stay open through proxies: a comment line when nothing else has
gone out for a while (a long tool call, a slow model), which every SSE client ignores."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from django.conf import settings

COMMENT = b": keep-alive\n\n"


async def with_keep_alive(
    body: AsyncIterator[bytes], every: float | None = None
) -> AsyncIterator[bytes]:
    """`body`'s chunks, with COMMENT after each `every` seconds of silence. The next chunk
    is awaited in a task of its own, so a silence never cancels the body half-way."""
    every = settings.PARLEY_SSE_KEEP_ALIVE_SECONDS if every is None else every
    chunks = aiter(body)
    waiting: asyncio.Task | None = None
    try:
        while True:
            if waiting is None:
                waiting = asyncio.ensure_future(anext(chunks))
            done, _ = await asyncio.wait({waiting}, timeout=every)
            if not done:
                yield COMMENT
                continue
            try:
                chunk = waiting.result()
            except StopAsyncIteration:
                return
            waiting = None
            yield chunk
    finally:
        if waiting is not None:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await waiting
        closing = getattr(chunks, "aclose", None)
        if closing is not None:
            await closing()
