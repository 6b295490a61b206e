"""The chat WebSocket's frames (docs/protocol.md): what clients send, validated before
anything acts on them, and what the socket sends besides a run's own (agents.engine.events)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from agents.engine.events import frame_fields
from ontology.errors import ErrorCode, sentence_for


class FrameError(Exception):
    """A frame the server refuses; answered with an `error` frame, never a crash."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SendMessage:
    content: str
    client_id: str
    agent_id: int | None = None  # answer with this agent of the group from now on


@dataclass(frozen=True)
class StopRun:
    run_id: uuid.UUID | None = None  # only this run; without it, whatever streams on the thread


@dataclass(frozen=True)
class Regenerate:
    message_id: uuid.UUID
    agent_id: int | None = None  # answer again with this agent of the group, from now on


@dataclass(frozen=True)
class EditMessage:
    message_id: uuid.UUID  # the question edited
    content: str
    client_id: str
    agent_id: int | None = None


@dataclass(frozen=True)
class SwitchBranch:
    message_id: uuid.UUID  # the sibling to show


@dataclass(frozen=True)
class Resume:
    after_seq: int
    run_id: uuid.UUID | None = None  # the run `after_seq` counts in; without it, the latest


Frame = SendMessage | StopRun | Regenerate | EditMessage | SwitchBranch | Resume
FRAME_TYPES: dict[str, type] = {
    "message.send": SendMessage,
    "run.stop": StopRun,
    "message.regenerate": Regenerate,
    "message.edit": EditMessage,
    "branch.switch": SwitchBranch,
    "stream.resume": Resume,
}
MAX_FRAME_BYTES = 256_000
# PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate (JSON's "\ud800").
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def parse_frame(text: str | None, *, max_chars: int) -> Frame:
    if text is None:
        raise FrameError(ErrorCode.BAD_FRAME, "Frames must be JSON text.")
    if len(text) > MAX_FRAME_BYTES + max_chars:
        raise FrameError(ErrorCode.TOO_LONG, f"Messages can be at most {max_chars:,} characters.")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise FrameError(ErrorCode.BAD_JSON, "That frame is not valid JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError(ErrorCode.BAD_FRAME, "Every frame needs a string `type`.")
    kind = data["type"]
    if kind in ("message.send", "message.edit"):
        content = _field(data, "content", str)
        if not content.strip():
            raise FrameError(ErrorCode.EMPTY, sentence_for(ErrorCode.EMPTY))
        if UNSTORABLE.search(content):
            raise FrameError(ErrorCode.BAD_TEXT, sentence_for(ErrorCode.BAD_TEXT))
        if len(content) > max_chars:
            raise FrameError(
                ErrorCode.TOO_LONG, f"Messages can be at most {max_chars:,} characters."
            )
        client_id = data.get("client_id", "")
        if not isinstance(client_id, str) or len(client_id) > 64 or UNSTORABLE.search(client_id):
            raise FrameError(
                ErrorCode.BAD_FRAME, "`client_id` must be a string of at most 64 characters."
            )
        if kind == "message.edit":
            return EditMessage(
                message_id=_message_id(data),
                content=content,
                client_id=client_id,
                agent_id=_optional_agent_id(data),
            )
        return SendMessage(content=content, client_id=client_id, agent_id=_optional_agent_id(data))
    if kind == "branch.switch":
        return SwitchBranch(message_id=_message_id(data))
    if kind == "run.stop":
        return StopRun(run_id=_optional_run_id(data))
    if kind == "message.regenerate":
        return Regenerate(message_id=_message_id(data), agent_id=_optional_agent_id(data))
    if kind == "stream.resume":
        after = _field(data, "after_seq", int)
        if isinstance(after, bool) or after < 0:
            raise FrameError(ErrorCode.BAD_FRAME, "`after_seq` must be a number of at least 0.")
        return Resume(after_seq=after, run_id=_optional_run_id(data))
    raise FrameError(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {kind!r}.")


def _message_id(data: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(_field(data, "message_id", str))
    except ValueError:
        raise FrameError(ErrorCode.BAD_FRAME, "`message_id` must be a message id.") from None


def _optional_agent_id(data: dict[str, Any]) -> int | None:
    value = data.get("agent_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise FrameError(ErrorCode.BAD_FRAME, "`agent_id` must be an agent's id.")
    return value


def _optional_run_id(data: dict[str, Any]) -> uuid.UUID | None:
    value = data.get("run_id")
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return uuid.UUID(value)
    except ValueError:
        pass
    raise FrameError(ErrorCode.BAD_FRAME, "`run_id` must be a run id.")


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    if name not in data:
        raise FrameError(ErrorCode.MISSING_FIELD, f"The frame needs `{name}`.")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError(ErrorCode.BAD_FRAME, f"`{name}` has the wrong type.")
    return value


# --- Frames the socket sends (a run's own frames are agents.engine.events) -----------------


@dataclass(frozen=True)
class MessageCreated:
    type: ClassVar[str] = "message.created"
    message: dict[str, Any]


@dataclass(frozen=True)
class MessageReplaced:
    type: ClassVar[str] = "message.replaced"
    message_id: str


@dataclass(frozen=True)
class ThreadBranched:
    """The shown branch changed after message `after` (left out: from the start): tabs drop
    what they show after it, then get the new branch (`reload`: fetch it; else its
    messages follow on the socket)."""

    type: ClassVar[str] = "thread.branched"
    after: str | None
    reload: bool


@dataclass(frozen=True)
class ThreadUpdated:
    type: ClassVar[str] = "thread.updated"
    thread: dict[str, Any]


@dataclass(frozen=True)
class RunActive:
    """Sent on connect when a run already streams on the thread: the socket gets its events
    once it sends `stream.resume` (with `after_seq` 0 to have it from the start)."""

    type: ClassVar[str] = "run.active"
    run_id: str


@dataclass(frozen=True)
class StreamResumed:
    """The answer to `stream.resume`, after its replay: the thread's latest run (None when it
    has had none), the last seq of it this socket now has, and whether it still streams.
    (`last_seq`, not `seq`: a frame with a `seq` is a run event.)"""

    type: ClassVar[str] = "stream.resumed"
    run_id: str | None
    last_seq: int
    streaming: bool


@dataclass(frozen=True)
class ErrorFrame:
    """A refusal of what this socket asked for (a run's own failure is RunFailed)."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    retry_after: int | None = None


ServerFrame = (
    MessageCreated | MessageReplaced | ThreadUpdated | RunActive | StreamResumed | ErrorFrame
)


def to_wire(frame: ServerFrame) -> dict[str, Any]:
    return {"type": frame.type, **frame_fields(frame)}
