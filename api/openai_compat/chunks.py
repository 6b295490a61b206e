"""OpenAI's wire shapes for one answer: `chat.completion`, its `chat.completion.chunk`s and
the SSE lines that carry them.

Parley's own additions travel in a `parley` field that plain clients ignore (the SDKs keep
unknown fields): the run's id, and the knowledge sources the answer cites as [n].
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

DONE = b"data: [DONE]\n\n"
# A provider's word for running out of output tokens, as OpenAI says it.
LENGTH_REASONS = frozenset({"length", "max_tokens"})


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def finish_reason(provider_reason: str) -> str:
    return "length" if provider_reason in LENGTH_REASONS else "stop"


def usage_of(event: dict[str, Any]) -> dict[str, int]:
    """OpenAI's usage from run.completed's: the run's ledger rows summed."""
    counted = event.get("usage") or {}
    prompt, completion = int(counted.get("input", 0)), int(counted.get("output", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@dataclass
class Shape:
    """The fields every object of one answer shares."""

    run_id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def id(self) -> str:
        return "chatcmpl-" + self.run_id.replace("-", "")

    def parley(self, sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"run_id": self.run_id}
        if sources is not None:
            extra["sources"] = sources
        return extra

    def chunk(
        self,
        delta: dict[str, Any],
        *,
        finish: str | None = None,
        parley: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if parley is not None:
            chunk["parley"] = parley
        return chunk

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage,
        }

    def completion(
        self,
        *,
        content: str,
        finish: str,
        usage: dict[str, int],
        sources: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
            "parley": self.parley(sources),
        }
