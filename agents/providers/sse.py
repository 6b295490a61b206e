"""Server-sent events as both wires read them: from the SDK's streaming response's bytes.

The SDKs send the request (auth, retries, status errors) and hand back the raw
response; the events are parsed here into plain dicts. Building the SDK's typed
model per token cost more CPU than everything else a streamed token goes through.

The conversation (messages, system, tools) goes in the request as `extra_body`, which
the SDKs merge into the JSON body as it is. Passed as typed parameters, the SDKs walk
every message through their parameter transform first: for plain JSON chat payloads an
identity, and a third of a chat turn's SDK CPU (about 2 ms a call).

Once text flows, the network is read at most once per PARLEY_STREAM_FRAME_MS
(the first token is never held back), each read taking whatever arrived meanwhile
in one go. A model sends a token every few milliseconds; reading each on its own wakes
the whole HTTP stack per token, for text that goes out in frames anyway. A hold ends
early when the response's body has all arrived (`watch_body_end`): the end of an answer is
never held back, so a fast provider's turn ends when its stream does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from agents.providers.base import StreamEvent, TextDelta


async def paced(
    reads: AsyncIterator[list[StreamEvent]], *, ended: asyncio.Future | None = None
) -> AsyncIterator[StreamEvent]:
    """A wire's events, given as a list per network read: each read's text joined into one
    delta, and after text the next read held until PARLEY_STREAM_FRAME_MS has passed, or
    until `ended` (see `watch_body_end`) says the rest of the body is already here."""
    interval = settings.PARLEY_STREAM_FRAME_MS / 1000
    async for events in reads:
        events = merged(events)
        handed_at = time.monotonic()
        for event in events:
            yield event
        if carries_text(events):
            await hold_reads(handed_at, interval, ended)


def carries_text(events: list[StreamEvent]) -> bool:
    return any(isinstance(event, TextDelta) for event in events)


async def hold_reads(
    handed_at: float, interval: float, ended: asyncio.Future | None = None
) -> None:
    """Before the next read: wait until `interval` after text was last handed on, or until
    the body has ended, since waiting then gathers nothing more.

    Called only after a read that carried text, so nothing before the first token
    (the request, the role chunk, a tool call's arguments) is ever held.
    """
    remaining = handed_at + interval - time.monotonic()
    if remaining <= 0:
        return
    if ended is None:
        await asyncio.sleep(remaining)
    elif not ended.done():
        await asyncio.wait((ended,), timeout=remaining)


def body_ended() -> asyncio.Future:
    """A stream's "whole body is here" future, for `paced` and `watch_body_end`."""
    return asyncio.get_running_loop().create_future()


def watch_body_end(http_response: Any, ended: asyncio.Future) -> None:
    """Complete `ended` once the whole body of the SDK's streaming response has arrived
    (its last bytes may still be unread).

    The SDKs' aiohttp transport (`httpx_aiohttp`, vendored by both and pinned in
    constraints.txt) keeps the aiohttp response inside httpx's stream, and its
    StreamReader calls back when the body ends (tests/agents/test_deltas.py fails if
    either changes). With another transport `ended` stays pending and the holds simply
    run their interval.
    """
    stream, aiohttp_response = http_response.stream, None
    for _ in range(3):  # httpx wraps the transport's stream to time it (BoundAsyncStream)
        aiohttp_response = getattr(stream, "_aiohttp_response", None)
        if aiohttp_response is not None:
            break
        stream = getattr(stream, "_stream", None)
    content = getattr(aiohttp_response, "content", None)
    if content is None or not hasattr(content, "on_eof"):
        return

    def end() -> None:
        if not ended.done():
            ended.set_result(None)

    content.on_eof(end)


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """The data of the server-sent events (each event's `data:` lines joined), in order,
    as a list per network read that completed any. Lines end in LF or CRLF."""
    buffer = b""
    data: list[str] = []
    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        events: list[str] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    events.append("\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                data.append(_field_value(line))
        if events:
            yield events
    line = buffer.rstrip(b"\r")
    if line.startswith(b"data:"):
        data.append(_field_value(line))
    if data:
        yield ["\n".join(data)]


def _field_value(line: bytes) -> str:
    return (line[6:] if line.startswith(b"data: ") else line[5:]).decode(errors="replace")


def merged(events: list[StreamEvent]) -> list[StreamEvent]:
    """One read's events with adjacent text joined: one delta per read, not per token."""
    out: list[StreamEvent] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text)
        else:
            out.append(event)
    return out
