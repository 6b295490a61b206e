"""What the agent loop needs of the conversation it answers in, and chat provides.

The engine comes before chat (apps depend one way: ontology -> billing -> agents ->
chat), so it names the thread's storage by this protocol; chat.conversation implements
it over AIThread and Message, and chat's run registry hands one to each run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol


class AnswerStatus(StrEnum):
    """How an answer ended (the values chat stores on the message)."""

    COMPLETE = "complete"
    STOPPED = "stopped"
    ERROR = "error"


USER = "user"  # the role of a person's message in the history


class Answer(Protocol):
    pk: Any


class Conversation(Protocol):
    """A thread of one group. Every method is sync and runs inside the group's scope."""

    @property
    def thread_id(self) -> int: ...

    @property
    def agent_id(self) -> int | None: ...

    def history(self) -> list[tuple[str, str]]:
        """(role, text) of the messages a model should see, oldest first."""

    @property
    def history_in_memory(self) -> bool:
        """True when history() reads nothing (a request's own messages)."""

    def start_answer(self, *, run_id: Any, message_id: Any) -> Answer:
        """The answer's row, streaming, before its first text is saved."""

    def finish_answer(
        self,
        answer: Answer,
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
        """Save how the answer ended, its ledger rows (`ledger_write`) and its Event at once."""

    def fail_answer(self, answer: Answer, *, content: str) -> None:
        """Mark a streaming answer failed, its row alone (when finishing it whole failed)."""
