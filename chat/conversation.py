"""The engine's view of a thread (agents.engine.conversation.Conversation), over chat's models."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.utils import timezone

from chat import selectors, services
from chat.models import AIThread, Message
from ontology.models import Group
from ontology.rows import Batch
from ontology.scoping import ScopeError, group_scope


class ThreadConversation:
    def __init__(self, *, group: Group, thread: AIThread) -> None:
        if thread.group_id != group.pk:
            raise ScopeError("A run must stay inside its thread's group.")
        self.group = group
        self.thread = thread
        self._answers = None  # the question the answer hangs from, once history() has read it
        self._branch: list[Message] | None = None  # read for a question just asked (`ask`)
        self._messages: list[Message] | None = None  # the thread's, read by `read` for `ask`
        # Called with the answer's status once it is saved, on the same database thread
        # (chat.runs queues the thread's title there); its own failures are its to handle.
        self.after_finish: Callable[[str], None] | None = None
        self._batch: Batch | None = None  # the rows `ask` and `start_answer` queue

    @contextlib.contextmanager
    def writes_together(self) -> Iterator[None]:
        """The rows `ask` and `start_answer` write inside the block go to the database
        together, in one statement, as the block ends (ontology.rows.Batch): a turn's start
        writes its question, the thread's last activity, the question's event and the
        answer's row in one round trip. Nothing in the block may read them back. If the
        block raises, none of them is written."""
        self._batch = Batch()
        try:
            yield
            self._batch.write()
        finally:
            self._batch = None

    @property
    def thread_id(self) -> int:
        return self.thread.pk

    @property
    def agent_id(self) -> int | None:
        return self.thread.agent_id

    @property
    def history_in_memory(self) -> bool:
        return False

    def read(self) -> list[Message]:
        """Every message of the thread, every branch's (the turn's start looks in them for an
        answer still streaming); the next `ask` places its question from them."""
        with group_scope(self.group):
            self._messages = selectors.thread_rows(thread=self.thread)
        return self._messages

    def ask(self, *, user, content: str, client_id: str = "") -> Message:
        """Save a question after the shown branch (services.message_create_user), reading
        the branch once for both: where the question goes and the history sent with it
        (from `read`, when it came just before, in the same lock).
        Inside the caller's transaction and the thread's lock (chat.turns)."""
        messages, self._messages = self._messages, None
        with group_scope(self.group):
            if messages is None:
                branch = selectors.thread_messages(thread=self.thread)
            else:
                branch = selectors.shown_branch(messages)
            question = services.message_create_user(
                thread=self.thread,
                user=user,
                content=content,
                client_id=client_id,
                branch=branch,
                batch=self._batch,
            )
        self._branch = [*branch, question]
        return question

    def history(self) -> list[tuple[str, str]]:
        """The shown branch (chat.tree): what the person sees is what the model is sent.
        The branch read here also names the question the answer will hang from."""
        kept = (Message.Status.COMPLETE, Message.Status.STOPPED)
        path, self._branch = self._branch, None
        if path is None:
            with group_scope(self.group):
                path = selectors.thread_messages(thread=self.thread)
        if path:
            last = path[-1]
            self._answers = services.question_answered(
                role=last.role, id=last.id, parent_id=last.parent_id
            )
        return [
            (message.role, message.content)
            for message in path
            if message.status in kept and message.content
        ]

    def start_answer(self, *, run_id, message_id) -> Message:
        with group_scope(self.group):
            return services.assistant_message_start(
                thread=self.thread,
                run_id=run_id,
                message_id=message_id,
                parent_id=self._answers,
                batch=self._batch,
            )

    def finish_answer(self, answer: Message, **outcome: Any) -> None:
        with group_scope(self.group):
            services.assistant_message_finish(message=answer, **outcome)
        if self.after_finish is not None:
            self.after_finish(outcome["status"])

    def fail_answer(self, answer: Message, *, content: str) -> None:
        with group_scope(self.group):
            Message.objects.filter(pk=answer.pk, status=Message.Status.STREAMING).update(
                status=Message.Status.ERROR,
                content=content,
                error_code="internal",
                updated_at=timezone.now(),
            )
