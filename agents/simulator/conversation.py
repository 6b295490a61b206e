"""A request body as a wire-neutral `Conversation`: what the model reads, and its prompt size.

Token accounting, exact by construction because the platform verifies usage to the token
with the same tokenizer (`agents.tokens`):

* prompt tokens = ``count_tokens(system)`` for every piece of an Anthropic ``system`` (a string
  or each text block; OpenAI has no separate system: its system/developer messages are
  ordinary messages below)
  + for every message: ``count_tokens`` of each text piece it carries + ``MESSAGE_OVERHEAD``
  (4). Pieces are: string content; each ``text`` part/block; each OpenAI tool call's
  ``function.arguments`` string; each Anthropic ``tool_use`` block's ``json.dumps(input)``;
  each tool result's content (a string, or each of its text blocks). Images and other
  non-text parts count nothing.
  + ``count_tokens(json.dumps(tools, sort_keys=True))`` of the request's raw ``tools`` list,
  when it is non-empty.
* cached tokens = the scenario's ``cached`` parameter, capped at the prompt tokens; they are
  part of the prompt tokens (OpenAI ``prompt_tokens`` includes them; Anthropic reports
  ``input_tokens`` = prompt - cached and ``cache_read_input_tokens`` = cached).
* output tokens = the number of text tokens sent (``split_tokens`` pieces, one per stream
  event) + ``count_tokens(arguments)`` of each tool call's arguments JSON text as sent
  (`replies.Output`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.tokens import MESSAGE_OVERHEAD, count_tokens


@dataclass(frozen=True)
class OfferedTool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Turn:
    """One message, reduced to what the simulated model reads and what usage counts.

    ``role`` is ``system``, ``user``, ``assistant`` or ``tool``; an Anthropic user message
    that carries ``tool_result`` blocks is a ``tool`` turn.
    """

    role: str
    text: str
    pieces: tuple[str, ...]
    tool_results: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    system: str
    system_pieces: tuple[str, ...]
    turns: tuple[Turn, ...]
    tools: tuple[OfferedTool, ...]
    raw_tools: tuple[Any, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        """The exact prompt size, counted as the module docstring describes."""
        total = sum(count_tokens(piece) for piece in self.system_pieces)
        for turn in self.turns:
            total += sum(count_tokens(piece) for piece in turn.pieces) + MESSAGE_OVERHEAD
        if self.raw_tools:
            total += count_tokens(json.dumps(list(self.raw_tools), sort_keys=True))
        return total

    @property
    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn.text
        return ""

    @property
    def ends_with_user(self) -> bool:
        return bool(self.turns) and self.turns[-1].role == "user"

    @property
    def trailing_tool_results(self) -> tuple[str, ...]:
        """The results of the latest tool round, oldest first; empty unless the turn ends on one."""
        results: list[str] = []
        for turn in reversed(self.turns):
            if turn.role != "tool":
                break
            results[:0] = turn.tool_results
        return tuple(results)

    @property
    def ends_with_tool_results(self) -> bool:
        return bool(self.turns) and self.turns[-1].role == "tool"

    def tool_named(self, name: str) -> OfferedTool | None:
        return next((tool for tool in self.tools if tool.name == name), None)


def _require_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def _require_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def _text_parts(content: Any, what: str) -> list[str]:
    """The text pieces of string-or-parts content; non-text parts (images) carry none."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    parts = _require_list(content, what)
    texts = []
    for part in parts:
        part = _require_dict(part, f"{what} part")
        if part.get("type") == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{what} text part needs a string 'text'")
            texts.append(text)
    return texts


def _offered_tools(raw_tools: list[Any], tool_choice: Any, *, wire: str) -> tuple[OfferedTool, ...]:
    """The tools the model may call: none when ``tool_choice`` says so, as the real APIs do."""
    choice = tool_choice.get("type") if isinstance(tool_choice, dict) else tool_choice
    if choice == "none":
        return ()
    tools = []
    for raw in raw_tools:
        raw = _require_dict(raw, "tools entry")
        if wire == "openai":
            function = _require_dict(raw.get("function"), "tools entry 'function'")
            name, schema = function.get("name"), function.get("parameters") or {}
        else:
            name, schema = raw.get("name"), raw.get("input_schema") or {}
        if not isinstance(name, str) or not name:
            raise ValueError("Every tool needs a name")
        tools.append(OfferedTool(name=name, schema=schema if isinstance(schema, dict) else {}))
    return tuple(tools)


def conversation_from_openai(body: Mapping[str, Any]) -> Conversation:
    """Read a Chat Completions body; raises ValueError for what the real API would reject."""
    messages = _require_list(body.get("messages"), "'messages'")
    if not messages:
        raise ValueError("'messages' must not be empty")
    raw_tools = _require_list(body.get("tools") or [], "'tools'")
    turns = []
    system_texts = []
    for message in messages:
        message = _require_dict(message, "message")
        role = message.get("role")
        texts = _text_parts(message.get("content"), f"{role} message content")
        pieces = list(texts)
        text = "\n".join(texts)
        if role in ("system", "developer"):
            system_texts.append(text)
            turns.append(Turn(role="system", text=text, pieces=tuple(pieces)))
        elif role in ("tool", "function"):
            turns.append(Turn(role="tool", text=text, pieces=tuple(pieces), tool_results=(text,)))
        elif role in ("user", "assistant"):
            for call in _require_list(message.get("tool_calls") or [], "'tool_calls'"):
                function = _require_dict(_require_dict(call, "tool call").get("function"), "call")
                arguments = function.get("arguments", "")
                pieces.append(arguments if isinstance(arguments, str) else json.dumps(arguments))
            turns.append(Turn(role=role, text=text, pieces=tuple(pieces)))
        else:
            raise ValueError(f"Unknown message role {role!r}")
    return Conversation(
        system="\n".join(system_texts),
        system_pieces=(),
        turns=tuple(turns),
        tools=_offered_tools(raw_tools, body.get("tool_choice"), wire="openai"),
        raw_tools=tuple(raw_tools),
    )


def conversation_from_anthropic(body: Mapping[str, Any]) -> Conversation:
    """Read a Messages body; raises ValueError for what the real API would reject."""
    messages = _require_list(body.get("messages"), "'messages'")
    if not messages:
        raise ValueError("'messages' must not be empty")
    raw_tools = _require_list(body.get("tools") or [], "'tools'")
    system_pieces = _text_parts(body.get("system"), "'system'")
    turns = []
    for message in messages:
        message = _require_dict(message, "message")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"Unknown message role {role!r}")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        pieces: list[str] = []
        texts: list[str] = []
        results: list[str] = []
        for block in _require_list(blocks, "message content"):
            block = _require_dict(block, "content block")
            kind = block.get("type")
            if kind == "text":
                block_texts = _text_parts([block], "content")
                texts.extend(block_texts)
                pieces.extend(block_texts)
            elif kind == "tool_use":
                pieces.append(json.dumps(block.get("input", {})))
            elif kind == "tool_result":
                result_texts = _text_parts(block.get("content"), "tool_result content")
                pieces.extend(result_texts)
                results.append("\n".join(result_texts))
        text = "\n".join(texts)
        turn_role = "tool" if results else role
        turns.append(Turn(turn_role, text, tuple(pieces), tuple(results)))
    return Conversation(
        system="\n".join(system_pieces),
        system_pieces=tuple(system_pieces),
        turns=tuple(turns),
        tools=_offered_tools(raw_tools, body.get("tool_choice"), wire="anthropic"),
        raw_tools=tuple(raw_tools),
    )


def fingerprint(*, wire: str, model: str, messages: Any, system: Any = None) -> str:
    """Identify "the same request again", so the ``*_once`` scenarios fail only the first try."""
    material = "\n".join(
        [wire, model, json.dumps(messages, sort_keys=True), json.dumps(system, sort_keys=True)]
    )
    return hashlib.sha256(material.encode()).hexdigest()
