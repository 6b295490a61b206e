"""A turn's events as OpenAI's answer: one `chat.completion`, or a stream of chunks.

A stream's status line is sent before its first chunk, so the view first waits for the
run's first meaningful event (its first text, or its end): a run that fails before saying
anything gets an error response with its proper status; one that fails later can only
say so inside the stream, as `data: {"error": ...}` (which the SDKs raise).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.errors import openai_error_body
from api.openai_compat.chunks import DONE, Shape, finish_reason, sse, usage_of
from ontology.errors import ErrorCode


class Turn(Protocol):
    run_id: str
    ended: bool

    async def next_event(self) -> dict[str, Any]: ...

    @property
    def finish_reason(self) -> str: ...

    def abandon(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Opening:
    """What a turn said before its first text or its end, that event included."""

    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def failed(self) -> bool:
        return self.last["type"] == "error"


async def opening(turn: Turn) -> Opening:
    seen = Opening()
    while True:
        event = await turn.next_event()
        seen.events.append(event)
        if event["type"] == "delta" or turn.ended:
            return seen


def error_of(event: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of a run's error event."""
    return event.get("code") or ErrorCode.INTERNAL, event.get("message") or ""


async def _events(turn: Turn, start: Opening) -> AsyncIterator[dict[str, Any]]:
    for event in start.events:
        yield event
    while not turn.ended:
        yield await turn.next_event()


async def completion(turn: Turn, start: Opening, shape: Shape) -> dict[str, Any] | dict:
    """The whole answer as a `chat.completion`, or the run's final error event."""
    texts: list[str] = []
    sources: list[dict[str, Any]] = []
    async for event in _events(turn, start):
        kind = event["type"]
        if kind == "delta":
            texts.append(event["text"])
        elif kind == "sources":
            sources += event["items"]
        elif kind == "error":
            return event
        elif kind in ("run.completed", "run.stopped"):
            return shape.completion(
                content="".join(texts),
                finish=finish_reason(turn.finish_reason),
                usage=usage_of(event),
                sources=sources,
            )
    raise AssertionError("a turn ends with its final event")


async def chunks(
    turn: Turn, start: Opening, shape: Shape, *, include_usage: bool
) -> AsyncIterator[bytes]:
    """The answer as SSE lines: the role, each text, the finish (then usage), `[DONE]`.
    A client that leaves mid-stream abandons the turn (a stateless run stops)."""
    try:
        yield sse(shape.chunk({"role": "assistant", "content": ""}, parley=shape.parley()))
        async for event in _events(turn, start):
            kind = event["type"]
            if kind == "delta":
                yield sse(shape.chunk({"content": event["text"]}))
            elif kind == "sources":
                yield sse(shape.chunk({}, parley=shape.parley(event["items"])))
            elif kind == "error":
                code, message = error_of(event)
                yield sse(openai_error_body(code, message))
                return
            elif kind in ("run.completed", "run.stopped"):
                yield sse(shape.chunk({}, finish=finish_reason(turn.finish_reason)))
                if include_usage:
                    yield sse(shape.usage_chunk(usage_of(event)))
                yield DONE
                return
    finally:
        if not turn.ended:
            turn.abandon()
        await turn.close()
