"""Client frames of the chat WebSocket protocol, validated before anything acts on them."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True)
class StopRun:
    pass


@dataclass(frozen=True)
class Regenerate:
    message_id: uuid.UUID


@dataclass(frozen=True)
class Resume:
    after_seq: int


Frame = SendMessage | StopRun | Regenerate | Resume
FRAME_TYPES: dict[str, type] = {
    "message.send": SendMessage,
    "run.stop": StopRun,
    "message.regenerate": Regenerate,
    "stream.resume": Resume,
}
MAX_FRAME_BYTES = 256_000
# PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate (JSON's "\ud800").
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def parse_frame(text: str | None, *, max_chars: int) -> Frame:
    if text is None:
        raise FrameError("bad_frame", "Frames must be JSON text.")
    if len(text) > MAX_FRAME_BYTES + max_chars:
        raise FrameError("too_long", f"Messages can be at most {max_chars:,} characters.")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise FrameError("bad_json", "That frame is not valid JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError("bad_frame", "Every frame needs a string `type`.")
    kind = data["type"]
    if kind == "message.send":
        content = _field(data, "content", str)
        if not content.strip():
            raise FrameError("empty", "Write a message first.")
        if UNSTORABLE.search(content):
            raise FrameError(
                "bad_text",
                "Messages can't contain NUL characters or broken Unicode (lone surrogates).",
            )
        if len(content) > max_chars:
            raise FrameError("too_long", f"Messages can be at most {max_chars:,} characters.")
        client_id = data.get("client_id", "")
        if not isinstance(client_id, str) or len(client_id) > 64 or UNSTORABLE.search(client_id):
            raise FrameError("bad_frame", "`client_id` must be a string of at most 64 characters.")
        return SendMessage(content=content, client_id=client_id)
    if kind == "run.stop":
        return StopRun()
    if kind == "message.regenerate":
        try:
            return Regenerate(message_id=uuid.UUID(_field(data, "message_id", str)))
        except ValueError:
            raise FrameError("bad_frame", "`message_id` must be a message id.") from None
    if kind == "stream.resume":
        after = _field(data, "after_seq", int)
        if isinstance(after, bool) or after < 0:
            raise FrameError("bad_frame", "`after_seq` must be a number of at least 0.")
        return Resume(after_seq=after)
    raise FrameError("unknown_type", f"Unknown frame type {kind!r}.")


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    if name not in data:
        raise FrameError("missing_field", f"The frame needs `{name}`.")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("bad_frame", f"`{name}` has the wrong type.")
    return value
