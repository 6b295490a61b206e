"""The frames a run sends (docs/protocol.md), one dataclass each.

A run numbers them (`run_id`, `seq`) as it emits them; the sink gets the wire form,
`{"type": ..., "run_id": ..., "seq": ..., **fields}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class RunStarted:
    type: ClassVar[str] = "run.started"
    message_id: str


@dataclass(frozen=True)
class Delta:
    type: ClassVar[str] = "delta"
    text: str


@dataclass(frozen=True)
class ToolStarted:
    type: ClassVar[str] = "tool.started"
    call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True)
class ToolFinished:
    type: ClassVar[str] = "tool.finished"
    call_id: str
    name: str
    ok: bool
    summary: str


@dataclass(frozen=True)
class Sources:
    type: ClassVar[str] = "sources"
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class RunCompleted:
    type: ClassVar[str] = "run.completed"
    message_id: str
    usage: dict[str, int]
    cost: str


@dataclass(frozen=True)
class RunStopped:
    type: ClassVar[str] = "run.stopped"
    message_id: str


@dataclass(frozen=True)
class RunFailed:
    """A run that ended in an error; `message_id` when its answer's row exists."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    message_id: str | None = None


RunEvent = (
    RunStarted
    | Delta
    | ToolStarted
    | ToolFinished
    | Sources
    | RunCompleted
    | RunStopped
    | RunFailed
)


def frame_fields(frame: Any) -> dict[str, Any]:
    """A frame dataclass's fields as they travel: unset optional ones are left out."""
    return {k: v for k, v in vars(frame).items() if v is not None}


def wire(event: RunEvent, *, run_id: str, seq: int) -> dict[str, Any]:
    """The frame as it travels: its type, its place in the run, then its fields."""
    if type(event) is Delta:  # the frame sent most: its one field, with no walk of them all
        return {"type": Delta.type, "run_id": run_id, "seq": seq, "text": event.text}
    return {"type": event.type, "run_id": run_id, "seq": seq, **frame_fields(event)}
