"""What a client's JSON asks for, checked: a chat completion's or an embedding's request.

Only what Parley can honour is read. The agent's own settings decide the model, system
prompt, tools, temperature and output limit, so `temperature`, `max_tokens`, `tools` and
the like are accepted and ignored; a client's `system` (or `developer`) messages are
ignored too, since the agent's system prompt is what makes it that agent. What would be
silently wrong instead is refused (400): no messages, a last message not from the user,
tool results, images, `n` other than 1, token arrays for embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from agents.engine.conversation import USER
from chat.frames import UNSTORABLE

ASSISTANT = "assistant"
IGNORED_ROLES = frozenset({"system", "developer"})
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request


class InvalidBody(Exception):
    """A request Parley will not run; `param` names the field at fault, as OpenAI does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    history: list[tuple[str, str]]  # (user|assistant, text), oldest first, last from the user
    stream: bool
    include_usage: bool

    @property
    def question(self) -> str:
        return self.history[-1][1]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str  # read but not obeyed: the group's embedding model answers (and is named)
    texts: list[str]
    encoding: str  # "float", or "base64" (what the openai SDK asks for by default)
    dimensions: int | None  # when given, it must be the model's own


def _json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig:
        raise InvalidBody("The request body is too large.") from None
    except (ValueError, RecursionError):
        raise InvalidBody("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidBody("The request body must be a JSON object.")
    return data


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidBody("You must provide a model parameter.", "model")
    return model


def _text_of(content: Any, index: int) -> str:
    """A message's text: a string, or text parts (OpenAI's content array)."""
    param = f"messages[{index}].content"
    if content is None:
        return ""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidBody("Only text content parts are supported.", param)
            if not isinstance(part.get("text"), str):
                raise InvalidBody("A text part needs a string `text`.", param)
            parts.append(part["text"])
        text = "".join(parts)
    else:
        raise InvalidBody("A message's content must be a string or text parts.", param)
    if UNSTORABLE.search(text):
        raise InvalidBody("Text may not contain NUL characters or lone surrogates.", param)
    return text


def _history(messages: Any) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidBody("`messages` must be a non-empty array.", "messages")
    history: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role in IGNORED_ROLES:
            continue
        if role not in (USER, ASSISTANT):
            raise InvalidBody(
                "Only user, assistant and system messages are supported (the agent runs its "
                "own tools).",
                f"messages[{index}].role",
            )
        text = _text_of(message.get("content"), index)
        if text.strip():
            history.append((role, text))
    if not history or history[-1][0] != USER or messages[-1].get("role") != USER:
        raise InvalidBody("The last message must be a user message with text.", "messages")
    if len(history[-1][1]) > settings.PARLEY_MAX_MESSAGE_CHARS:
        raise InvalidBody(
            f"Messages can be at most {settings.PARLEY_MAX_MESSAGE_CHARS:,} characters.",
            "messages",
        )
    return history


def completion_request(request: HttpRequest) -> CompletionRequest:
    data = _json_object(request)
    model = _model(data)
    history = _history(data.get("messages"))
    if data.get("n", 1) not in (1, None):
        raise InvalidBody("Only n=1 is supported.", "n")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidBody("`stream` must be a boolean.", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidBody("`stream_options` must be an object.", "stream_options")
    return CompletionRequest(model, history, stream, bool(options.get("include_usage")))


def embedding_request(request: HttpRequest) -> EmbeddingRequest:
    data = _json_object(request)
    model = _model(data)
    raw = data.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise InvalidBody("`input` must be a string or a non-empty array of strings.", "input")
    if not all(isinstance(text, str) for text in texts):
        raise InvalidBody("Only text input is supported, not token arrays.", "input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidBody(f"At most {MAX_EMBEDDING_INPUTS} inputs per request.", "input")
    if any(not text.strip() or UNSTORABLE.search(text) for text in texts):
        raise InvalidBody("Every input must be non-empty text.", "input")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidBody("encoding_format must be float or base64.", "encoding_format")
    dimensions = data.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidBody("`dimensions` must be a positive integer.", "dimensions")
    return EmbeddingRequest(model, texts, encoding, dimensions)
