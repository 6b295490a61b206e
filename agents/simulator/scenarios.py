"""What the simulated model says, and how many tokens it bills for it: pure functions, no I/O.

A request is first reduced to a wire-neutral `Conversation` (`conversation_from_openai`,
`conversation_from_anthropic`), then `plan_reply` turns it and a `Scenario` into either a
`Failure` (an HTTP error the wire renders) or a `Reply` (text and/or tool calls, with pacing).
`finish_reply` applies `max_tokens` and yields the exact `Output` the server streams.

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
  event) + ``count_tokens(arguments)`` of each tool call's arguments JSON text as sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.tokens import MESSAGE_OVERHEAD, count_tokens, split_tokens

SCENARIOS = frozenset(
    {
        "offline",
        "text",
        "tool_call",
        "parallel_tools",
        "tool_loop",
        "rate_limited_once",
        "rate_limited",
        "server_error",
        "server_error_once",
        "context_length",
        "disconnect",
        "slow",
    }
)
COUNTED_SCENARIOS = frozenset({"rate_limited_once", "server_error_once"})
DEFAULT_SCENARIO = "offline"
SEARCH_TOOL = "searchKnowledge"
DEFAULT_WORDS = 12
MAX_PASSAGES = 3
USER_TEXT_LIMIT = 200
TITLE_WORDS = 6
NO_RESULTS = "I could not find anything about that in the knowledge base."

_FILLER = (
    "quick answer depends on context so we keep it short and clear while the team checks each "
    "step with care before moving forward together toward a simple plan that works well for "
    "everyone involved in this small project today"
)
FILLER_WORDS = tuple(_FILLER.split())

_PASSAGE_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r"(.+?[.!?])(?=\s|$)")


@dataclass(frozen=True)
class Scenario:
    """A scenario name and its raw ``key=value`` parameters, as written after the ``@``."""

    name: str = DEFAULT_SCENARIO
    params: Mapping[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        if key not in self.params:
            return default
        try:
            value = float(self.params[key])
        except ValueError:
            raise ValueError(f"Scenario parameter {key!r} must be a number") from None
        if value < 0:
            raise ValueError(f"Scenario parameter {key!r} must not be negative")
        return value

    def integer(self, key: str, default: int) -> int:
        return int(self.number(key, default))


def parse_scenario(spec: str | None) -> Scenario:
    """Parse ``name[;key=value]*``; an empty spec is the default scenario.

    A value that starts like JSON (``{``, ``[`` or ``"``) and decodes is taken whole, so
    ``args={"q": "a;b"}`` keeps its semicolon; one that does not decode (tests send broken
    arguments on purpose) ends at the next ``;``.
    """
    spec = (spec or "").strip()
    if not spec:
        return Scenario()
    name, _, rest = spec.partition(";")
    name = name.strip()
    if name not in SCENARIOS:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"Unknown simulator scenario {name!r} (known: {known})")
    params: dict[str, str] = {}
    decoder = json.JSONDecoder()
    position = 0
    while position < len(rest):
        key_end = rest.find("=", position)
        next_separator = rest.find(";", position)
        if key_end < 0 or (0 <= next_separator < key_end):
            raise ValueError(f"Scenario parameter without a value in {spec!r}")
        key = rest[position:key_end].strip()
        value_start = key_end + 1
        value_end = rest.find(";", value_start)
        value_end = len(rest) if value_end < 0 else value_end
        if rest[value_start : value_start + 1] in ("{", "[", '"'):
            try:
                _, json_end = decoder.raw_decode(rest, value_start)
            except json.JSONDecodeError:
                pass
            else:
                if json_end == len(rest) or rest[json_end] == ";":
                    value_end = json_end
        params[key] = rest[value_start:value_end]
        position = value_end + 1
    return Scenario(name=name, params=params)


def split_model(model: str) -> tuple[str, str | None]:
    """``"sim-gpt@tool_call;tool=x"`` → ``("sim-gpt", "tool_call;tool=x")``; no ``@`` → None."""
    base, at, spec = model.partition("@")
    return base, (spec if at else None)


@dataclass(frozen=True)
class ToolSpec:
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
    tools: tuple[ToolSpec, ...]
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

    def tool_named(self, name: str) -> ToolSpec | None:
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


def _offered_tools(raw_tools: list[Any], tool_choice: Any, *, wire: str) -> tuple[ToolSpec, ...]:
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
        tools.append(ToolSpec(name=name, schema=schema if isinstance(schema, dict) else {}))
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


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # the JSON text exactly as sent, possibly invalid on purpose


@dataclass(frozen=True)
class Reply:
    """What the model says, before ``max_tokens`` is applied, and how fast it says it."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    ttft_s: float = 0.0
    token_delay_s: float = 0.0
    cached_tokens: int = 0
    disconnect: bool = False


@dataclass(frozen=True)
class Failure:
    kind: Literal["rate_limited", "server_error", "context_length"]
    retry_after: float = 0.0


@dataclass(frozen=True)
class Output:
    """The exact content a response carries, and so what it bills."""

    tokens: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    stop: Literal["end", "tool_use", "length"]

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.tokens) + sum(count_tokens(call.arguments) for call in self.tool_calls)


def finish_reply(reply: Reply, max_tokens: int | None) -> Output:
    """Cut the text at ``max_tokens``; tool calls are never cut (they would not parse)."""
    tokens = tuple(split_tokens(reply.text))
    if reply.tool_calls:
        return Output(tokens=tokens, tool_calls=reply.tool_calls, stop="tool_use")
    if max_tokens is not None and len(tokens) > max_tokens:
        return Output(tokens=tokens[:max_tokens], tool_calls=(), stop="length")
    return Output(tokens=tokens, tool_calls=(), stop="end")


def filler_text(seed: str, words: int) -> str:
    """A stable, ordinary-looking sentence, so repeated runs of one request stream the same."""
    if words <= 0:
        return ""
    digest = hashlib.shake_256(seed.encode()).digest(2 * words)
    chosen = [
        FILLER_WORDS[int.from_bytes(digest[2 * i : 2 * i + 2], "big") % len(FILLER_WORDS)]
        for i in range(words)
    ]
    return " ".join(chosen).capitalize() + "."


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = _FIRST_SENTENCE.match(text)
    return match.group(1) if match else text[:USER_TEXT_LIMIT]


def _cited_answer(passages: Iterable[tuple[Any, str]]) -> str:
    cited = [
        f"{sentence} [{number}]"
        for number, content in list(passages)[:MAX_PASSAGES]
        if (sentence := first_sentence(content))
    ]
    return "Here is what I found. " + " ".join(cited) if cited else NO_RESULTS


def _passages_from_results(results: Iterable[str]) -> list[tuple[Any, str]]:
    passages: list[tuple[Any, str]] = []
    for result in results:
        try:
            items = json.loads(result).get("results")
        except (ValueError, AttributeError):
            continue
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            number = item.get("n", len(passages) + 1)
            content = item.get("content") or item.get("title") or ""
            passages.append((number, str(content)))
    return passages


def _passages_from_system(system: str) -> list[tuple[Any, str]]:
    passages = []
    for number, rest in _PASSAGE_LINE.findall(system):
        _title, colon, content = rest.partition(": ")
        passages.append((int(number), content if colon else rest))
    return passages


def _offline_reply(conversation: Conversation) -> tuple[str, tuple[ToolCall, ...]]:
    """The extractive "model" of the offline demo: search first, then quote what it found.

    Asked for a conversation title, it answers with the question's first words.
    """
    if "conversation title" in conversation.system:
        question = conversation.last_user_text.removeprefix("Question:").split("\n\n")[0]
        words = re.findall(r"[\w'-]+", question)[:TITLE_WORDS]
        return " ".join(words).capitalize(), ()
    if conversation.ends_with_tool_results:
        passages = _passages_from_results(conversation.trailing_tool_results)
        return _cited_answer(passages), ()
    if conversation.ends_with_user and conversation.tool_named(SEARCH_TOOL):
        arguments = json.dumps({"query": conversation.last_user_text})
        return "", (ToolCall(name=SEARCH_TOOL, arguments=arguments),)
    passages = _passages_from_system(conversation.system)
    if passages:
        return _cited_answer(passages), ()
    asked = conversation.last_user_text[:USER_TEXT_LIMIT]
    return f"I am Parley's offline model. You asked: {asked}", ()


def _schema_value(schema: Any, user_text: str) -> Any:
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if kind == "string":
        limit = schema.get("maxLength")
        return user_text[: limit if isinstance(limit, int) else USER_TEXT_LIMIT]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "object":
        return {}
    if kind == "array":
        return []
    return None


def synthesize_arguments(schema: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    """Fill the schema's required properties with the simplest valid-looking values."""
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    return {name: _schema_value(properties.get(name), user_text) for name in required}


def _tool_calls(
    scenario: Scenario, conversation: Conversation, *, count: int
) -> tuple[ToolCall, ...]:
    named = scenario.params.get("tool")
    if named:
        tools = [conversation.tool_named(named) or ToolSpec(name=named, schema={})] * count
    else:
        tools = list(conversation.tools[:count])
        tools += [tools[0]] * (count - len(tools))
    calls = []
    for tool in tools:
        arguments = scenario.params.get("args")
        if arguments is None:
            arguments = json.dumps(synthesize_arguments(tool.schema, conversation.last_user_text))
        calls.append(ToolCall(name=tool.name, arguments=arguments))
    return tuple(calls)


def plan_failure(scenario: Scenario, *, attempt: int) -> Failure | None:
    """The error this attempt gets, if any; ``attempt`` counts this scenario+fingerprint from 1."""
    name = scenario.name
    if name == "rate_limited" or (name == "rate_limited_once" and attempt == 1):
        return Failure(kind="rate_limited", retry_after=scenario.number("retry_after", 1))
    if name == "server_error" or (name == "server_error_once" and attempt == 1):
        return Failure(kind="server_error")
    if name == "context_length":
        return Failure(kind="context_length")
    return None


def plan_reply(
    scenario: Scenario,
    conversation: Conversation,
    *,
    seed: str,
    attempt: int,
    ttft_ms: float = 0.0,
    tokens_per_second: float = 0.0,
) -> Reply | Failure:
    """Decide the response. ``attempt`` counts requests with this scenario and fingerprint, from 1.

    ``ttft_ms`` and ``tokens_per_second`` are the server's defaults; the scenario's ``ttft_ms``
    and ``tps`` parameters override them (``slow`` has its own defaults of 50 ms and 20/s).
    """
    failure = plan_failure(scenario, attempt=attempt)
    if failure is not None:
        return failure
    name = scenario.name
    if name == "slow":
        ttft_ms, tokens_per_second = 50.0, 20.0
    ttft_ms = scenario.number("ttft_ms", ttft_ms)
    tokens_per_second = scenario.number("tps", tokens_per_second)
    filler = filler_text(seed, scenario.integer("words", DEFAULT_WORDS))
    text, calls = filler, ()
    if name == "text" and "reply" in scenario.params:
        text = scenario.params["reply"]
        if text.startswith('"'):
            text = json.loads(text)
    if name in ("offline", "rate_limited_once", "server_error_once"):
        text, calls = _offline_reply(conversation)
    elif name in ("tool_call", "parallel_tools"):
        if conversation.ends_with_tool_results:
            text = "Done: " + " ".join(conversation.trailing_tool_results)[:100]
        elif conversation.tools:
            count = 2 if name == "parallel_tools" else 1
            text, calls = "", _tool_calls(scenario, conversation, count=count)
    elif name == "tool_loop" and conversation.tools:
        text, calls = "", _tool_calls(scenario, conversation, count=1)

    return Reply(
        text=text,
        tool_calls=calls,
        ttft_s=ttft_ms / 1000,
        token_delay_s=1 / tokens_per_second if tokens_per_second > 0 else 0.0,
        cached_tokens=min(scenario.integer("cached", 0), conversation.prompt_tokens),
        disconnect=name == "disconnect",
    )


def split_json(text: str) -> list[str]:
    """Split arguments JSON into up to three fragments, as real streams deliver them."""
    third = max(1, len(text) // 3)
    pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
    return [piece for piece in pieces if piece] or [""]
