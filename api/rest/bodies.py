"""What the JSON API's POST bodies may hold, checked before anything acts on them.

A message is checked by the socket's own `message.send` rules (chat.frames), so the two
clients refuse the same texts with the same codes; the socket's `bad_frame` (a field of
the wrong type) is the API's `invalid`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from api.rest.http import Problem, json_object
from chat.frames import UNSTORABLE, FrameError, SendMessage, parse_frame
from ontology.errors import ErrorCode

MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class MessageBody:
    content: str
    client_id: str
    stream: bool
    agent_id: int | None = None  # switch the thread to this agent first (chat.turns)


@dataclass(frozen=True)
class ThreadBody:
    agent_id: int
    title: str


def message_body(request: HttpRequest) -> MessageBody:
    data = json_object(request)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise Problem(ErrorCode.INVALID, "`stream` must be true or false.")
    frame = {**data, "type": "message.send"}
    frame.pop("stream", None)
    try:
        parsed = parse_frame(json.dumps(frame), max_chars=settings.PARLEY_MAX_MESSAGE_CHARS)
    except FrameError as problem:
        code = ErrorCode.INVALID if problem.code == ErrorCode.BAD_FRAME else problem.code
        raise Problem(code, problem.message.replace("The frame", "The request body")) from None
    assert isinstance(parsed, SendMessage)
    return MessageBody(
        content=parsed.content,
        client_id=parsed.client_id,
        stream=stream,
        agent_id=parsed.agent_id,
    )


def thread_body(request: HttpRequest) -> ThreadBody:
    data = json_object(request)
    if "agent_id" not in data:
        raise Problem(ErrorCode.MISSING_FIELD, "The request body needs `agent_id`.")
    agent_id = data["agent_id"]
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        raise Problem(ErrorCode.INVALID, "`agent_id` must be an agent's id (a number).")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise Problem(ErrorCode.INVALID, "`title` must be a string.")
    if UNSTORABLE.search(title):
        raise Problem(ErrorCode.BAD_TEXT)
    title = title.strip()
    if len(title) > MAX_TITLE_CHARS:
        raise Problem(ErrorCode.TOO_LONG, f"Titles can be at most {MAX_TITLE_CHARS} characters.")
    return ThreadBody(agent_id=agent_id, title=title)
