"""The extractive "model" of the offline demo: search the knowledge, then quote what it found."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agents.simulator.conversation import Conversation
from agents.simulator.replies import ToolCall

SEARCH_TOOL = "searchKnowledge"
MAX_PASSAGES = 3
USER_TEXT_LIMIT = 200
TITLE_WORDS = 6
NO_RESULTS = "I could not find anything about that in the knowledge base."

_PASSAGE_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r"(.+?[.!?])(?=\s|$)")


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


def offline_reply(conversation: Conversation) -> tuple[str, tuple[ToolCall, ...]]:
    """Call the search tool on a fresh question, then answer by citing the passages it returned.

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
