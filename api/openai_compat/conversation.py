"""A conversation that lives in one request: the engine's Conversation with no thread.

Its history is the request's messages; answering stores no chat rows. What must outlive
the request still does, in one transaction when the run ends: the ledger rows of its
provider calls (`ledger_write`) and one `api.completion` audit Event naming the token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ontology.events import EventType
from ontology.models import ApiToken, Group
from ontology.scoping import group_scope
from ontology.services import event_record


@dataclass(frozen=True)
class RequestAnswer:
    """The answer of a stateless run: an id for the engine's frames, and no row."""

    pk: uuid.UUID
    run_id: uuid.UUID


class RequestConversation:
    def __init__(
        self,
        *,
        group: Group,
        agent_id: int,
        model: str,
        history: list[tuple[str, str]],
        token: ApiToken,
    ) -> None:
        self.group, self.model, self.token = group, model, token
        self._agent_id = agent_id
        self._history = list(history)

    @property
    def thread_id(self) -> None:
        return None

    @property
    def agent_id(self) -> int:
        return self._agent_id

    @property
    def history_in_memory(self) -> bool:
        return True

    def history(self) -> list[tuple[str, str]]:
        return list(self._history)

    def start_answer(self, *, run_id: Any, message_id: Any) -> RequestAnswer:
        return RequestAnswer(pk=message_id, run_id=run_id)

    def finish_answer(
        self,
        answer: RequestAnswer,
        *,
        status: str,
        content: str,
        actor: Any,
        tool_calls: list[dict[str, Any]],
        sources: list[dict[str, Any]],
        usage: dict[str, Any],
        error_code: str,
        ledger_write: Any,
    ) -> None:
        with group_scope(self.group), transaction.atomic():
            ledger_write()
            event_record(
                group=self.group,
                type=EventType.API_COMPLETION,
                actor=actor,
                target=self.token,
                metadata={
                    "agent_id": self._agent_id,
                    "model": self.model,
                    "run_id": str(answer.run_id),
                    "status": status,
                    **usage,
                    "tools": [call["name"] for call in tool_calls],
                    "sources": len(sources),
                    "error_code": error_code,
                },
            )

    def fail_answer(self, answer: RequestAnswer, *, content: str) -> None:
        """Nothing to mark: no row streams. (The engine still settles the ledger after.)"""
