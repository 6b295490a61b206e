"""Write paths for conversations. Each change records its Event in the same transaction."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from agents.models import KnowledgeSource, ToolCall
from billing.models import AICall
from chat import selectors
from chat.models import AIThread, Message, RunEvent, ThreadShare
from ontology import rows
from ontology.errors import ErrorCode, sentence_for
from ontology.events import EventType
from ontology.models import Group, Membership, Thing, User
from ontology.rows import Batch
from ontology.scoping import ensure_group_allowed, group_scope
from ontology.services import event_record

logger = logging.getLogger(__name__)


@transaction.atomic
def thread_create(*, group: Group, agent: Thing, user: User, title: str = "") -> AIThread:
    _check_agent(group, agent)
    thread = AIThread.objects.create(group=group, agent=agent, user=user, title=title[:200])
    event_record(
        group=group,
        type=EventType.THREAD_CREATED,
        actor=user,
        target=thread,
        metadata={"agent_id": agent.pk},
    )
    return thread


def thread_start(*, group: Group, agent: Thing, user: User) -> AIThread:
    """Where "new chat" leads: the user's untouched thread with this agent when there is one
    (a new chat left without a word is not listed again and again), else a new thread."""
    untouched = selectors.untouched_thread(group=group, user=user, agent=agent)
    if untouched is None:
        return thread_create(group=group, agent=agent, user=user)
    _check_agent(group, agent)
    return untouched


def _check_agent(group: Group, agent: Thing) -> None:
    ensure_group_allowed(group)
    if agent.group_id != group.pk or agent.type != Thing.Type.AGENT:
        raise ValidationError({"agent": "Pick one of your organisation's agents."})
    if agent.status != Thing.Status.ACTIVE:
        raise ValidationError({"agent": f"{agent.name} is not available right now."})


@transaction.atomic(savepoint=False)  # in a turn's transaction: no savepoint of its own
def message_create_user(
    *,
    thread: AIThread,
    user: User,
    content: str,
    client_id: str = "",
    edits: Message | None = None,
    branch: list[Message] | None = None,
    batch: Batch | None = None,
) -> Message:
    """A question after the shown branch's last message; or, `edits` given, a new version
    of that question (its sibling, shown from now on: chat.tree). `branch`: the shown
    branch, when the caller has just read it (selectors.thread_messages). `batch`: the
    rows (the question, the thread's last activity, the event) are queued there, for the
    caller to write with the rest of its turn's start (chat.conversation)."""
    ensure_group_allowed(thread.group)
    if edits is not None:
        parent_id = edits.parent_id
    else:
        path = selectors.thread_path(thread=thread) if branch is None else branch
        parent_id = path[-1].id if path else None
    writes = rows if batch is None else batch
    message = writes.insert(
        Message(
            group=thread.group,
            thread=thread,
            role=Message.Role.USER,
            user=user,
            content=content,
            client_id=client_id[:64],
            parent_id=parent_id,
        )
    )
    thread.last_activity_at = message.created_at
    writes.update(thread, ["last_activity_at"])
    event_record(
        group=thread.group,
        type=EventType.MESSAGE_SENT,
        actor=user,
        target=message,
        metadata={"thread_id": thread.pk, "chars": len(content)},
        batch=batch,
    )
    return message


def assistant_message_start(
    *,
    thread: AIThread,
    run_id: uuid.UUID,
    message_id: uuid.UUID,
    parent_id=None,
    batch: Batch | None = None,
) -> Message:
    """The placeholder the answer streams into; finished by assistant_message_finish.

    One INSERT, so no transaction of its own. Its audit Event is written by
    assistant_message_finish, with the outcome. `parent_id`: the question it answers, when
    the caller has just read the branch (a run has, for its history); else read here.
    `batch`: the row is queued there (see message_create_user).
    """
    ensure_group_allowed(thread.group)
    return (rows if batch is None else batch).insert(
        Message(
            id=message_id,
            group=thread.group,
            thread=thread,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            run_id=run_id,
            parent_id=parent_id if parent_id is not None else _question_answered(thread),
        )
    )


def _question_answered(thread: AIThread):
    """The question a new answer answers: the shown branch's last message, or (when that is
    an answer being regenerated) that answer's question."""
    path = selectors.thread_path(thread=thread)
    if not path:
        return None
    last = Message.objects.filter(pk=path[-1].id).values_list("role", "parent_id").first()
    return question_answered(role=last[0], id=path[-1].id, parent_id=last[1])


def question_answered(*, role: str, id, parent_id):
    """Given the shown branch's last message, the question a new answer answers."""
    return id if role == Message.Role.USER else parent_id


EVENT_FOR_STATUS = {
    Message.Status.COMPLETE: EventType.ANSWER_COMPLETED,
    Message.Status.STOPPED: EventType.ANSWER_STOPPED,
    Message.Status.ERROR: EventType.ANSWER_FAILED,
    Message.Status.INTERRUPTED: EventType.ANSWER_INTERRUPTED,
}


# What a run's end writes of its answer (the rest was written by assistant_message_start).
FINISHED_FIELDS = [
    "status",
    "content",
    "tool_calls",
    "sources",
    "usage",
    "error_code",
    "updated_at",
]


@transaction.atomic
def assistant_message_finish(
    *,
    message: Message,
    status: str,
    content: str,
    actor: User | None,
    tool_calls: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    usage: dict[str, Any],
    error_code: str = "",
    ledger_write=None,
) -> Message:
    """Write the answer, its ledger rows, the audit Event and the thread's activity at once:
    the ledger's statements, then the answer, the thread and the event in one statement
    (ontology.rows.Batch), all in one transaction."""
    ensure_group_allowed(message.group)
    batch = Batch()
    message.status = status
    message.content = content
    message.tool_calls = tool_calls
    message.sources = sources
    message.usage = usage
    message.error_code = error_code
    message.updated_at = timezone.now()
    batch.update(message, FINISHED_FIELDS)
    if ledger_write is not None:
        ledger_write()  # reads none of the rows the batch holds
    thread = message.thread  # a run's answer was made with its thread: no query
    thread.last_activity_at = message.updated_at
    batch.update(thread, ["last_activity_at"])
    event_record(
        group=message.group,
        type=EVENT_FOR_STATUS[status],
        actor=actor,
        target=message,
        metadata={
            "thread_id": message.thread_id,
            "run_id": str(message.run_id),
            **usage,
            "tools": [call["name"] for call in tool_calls],
            "error_code": error_code,
        },
        batch=batch,
    )
    batch.write()
    return message


@transaction.atomic
def thread_hand_off(*, thread: AIThread, reason: str, actor: User | None) -> int:
    """Hand the thread to a human: mark it, audit it, and e-mail the group's owners.

    Returns how many owners were notified.
    """
    ensure_group_allowed(thread.group)
    thread.status = AIThread.Status.HANDED_OFF
    thread.handoff_reason = reason[:1000]
    thread.save(update_fields=["status", "handoff_reason"])
    event_record(
        group=thread.group,
        type=EventType.THREAD_HANDED_OFF,
        actor=actor,
        target=thread,
        metadata={"reason": reason[:200]},
    )
    with group_scope(thread.group):
        owners = list(
            Membership.objects.filter(role=Membership.Role.OWNER)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    if owners:
        subject = f"[Parley] A conversation needs a human: {thread}"
        body = (
            f"{actor or 'Someone'} asked for a human in “{thread}”.\n\nReason: {reason}\n\n"
            f"Open it in Parley: thread #{thread.pk} of {thread.group}."
        )
        transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, owners))
    return len(owners)


@transaction.atomic
def message_replace(*, message: Message, actor: User) -> Message:
    """Let a regenerated answer take this one's place: the new answer becomes its sibling
    (chat.tree) and is shown; this one stays as an alternative (`< 1/2 >`)."""
    ensure_group_allowed(message.group)
    if (
        message.role != Message.Role.ASSISTANT
        or selectors.last_answer_id(thread=message.thread) != message.pk
        or message.status == Message.Status.STREAMING
    ):
        raise ValidationError({"message_id": "Only the last finished answer can be regenerated."})
    event_record(
        group=message.group,
        type=EventType.MESSAGE_REPLACED,
        actor=actor,
        target=message,
        metadata={"thread_id": message.thread_id},
    )
    return message


@transaction.atomic
def message_edit(*, message: Message, content: str, user: User, client_id: str = "") -> Message:
    """Ask an edited version of a question of the shown branch: a new question beside it,
    shown from now on with its own answer; the original and what followed it stay, one
    `<` away."""
    ensure_group_allowed(message.group)
    shown = {step.id for step in selectors.thread_path(thread=message.thread)}
    if message.role != Message.Role.USER or message.pk not in shown:
        raise ValidationError({"message_id": "Only a question of this conversation can be edited."})
    edited = message_create_user(
        thread=message.thread, user=user, content=content, client_id=client_id, edits=message
    )
    event_record(
        group=message.group,
        type=EventType.MESSAGE_EDITED,
        actor=user,
        target=edited,
        metadata={"thread_id": message.thread_id, "edits": str(message.pk)},
    )
    return edited


def branch_select(*, message: Message) -> Message:
    """Show the branch through this message: it becomes the chosen one of its siblings (the
    choices made further down that branch are kept)."""
    ensure_group_allowed(message.group)
    message.selected_at = timezone.now()
    message.save(update_fields=["selected_at"])
    return message


@transaction.atomic
def thread_rename(*, thread: AIThread, title: str, actor: User) -> AIThread:
    ensure_group_allowed(thread.group)
    title = " ".join(title.split())
    if not title:
        raise ValidationError({"title": "A title needs at least one word."})
    if len(title) > 200:
        raise ValidationError({"title": "Titles can be at most 200 characters."})
    previous = thread.title
    thread.title = title
    thread.save(update_fields=["title"])
    event_record(
        group=thread.group,
        type=EventType.THREAD_RENAMED,
        actor=actor,
        target=thread,
        metadata={"from": previous, "to": title},
    )
    return thread


@transaction.atomic
def thread_title_generated(*, thread: AIThread, title: str) -> bool:
    """Name an untitled thread; a title someone typed meanwhile wins. True when it was set."""
    ensure_group_allowed(thread.group)
    title = title[:200]
    if not title or not AIThread.objects.filter(pk=thread.pk, title="").update(title=title):
        return False
    thread.title = title
    event_record(
        group=thread.group, type=EventType.THREAD_TITLED, target=thread, metadata={"title": title}
    )
    return True


@transaction.atomic
def message_feedback_set(*, message: Message, feedback: str, actor: User) -> Message:
    """Thumbs up or down on an answer ("" clears it); the latest vote is the one kept."""
    ensure_group_allowed(message.group)
    if message.role != Message.Role.ASSISTANT:
        raise ValidationError({"message": "Only answers take feedback."})
    if feedback not in {"", *Message.Feedback.values}:
        raise ValidationError({"feedback": "Feedback is up, down or empty."})
    previous = message.feedback
    message.feedback = feedback
    message.save(update_fields=["feedback"])
    event_record(
        group=message.group,
        type=EventType.MESSAGE_FEEDBACK,
        actor=actor,
        target=message,
        metadata={"thread_id": message.thread_id, "from": previous, "to": feedback},
    )
    return message


# --- Managing threads: delete, archive, pin, share ------------------------------------


@dataclass(frozen=True)
class ThreadDeleted:
    """What a delete removed, and what it kept for billing."""

    title: str
    messages: int
    run_events: int
    ledger_calls: int


@transaction.atomic
def thread_delete(*, thread: AIThread, actor: User) -> ThreadDeleted:
    """Delete a thread and everything it said; keep what the group was charged.

    Retention: the messages, the run log (RunEvent), its shares, its tool calls'
    arguments and results, and the files attached in it (their chunks and vectors) go
    with the thread. The ledger stays: billing's AICall rows
    are what the group paid, so their `thread` becomes NULL (billing's SET_NULL) and the
    Event written here keeps the thread's id and title with the ids of those rows. The
    audit trail is append-only and keeps every earlier Event.

    A thread that is answering is refused with ErrorCode.BUSY rather than stopped:
    deleting under a live run would pull its rows away while it writes them, and the
    person can press Stop and delete in two clicks.
    """
    ensure_group_allowed(thread.group)
    # The row lock orders this delete after any other write that locked the thread.
    AIThread.objects.select_for_update().filter(pk=thread.pk).first()
    if thread_is_answering(thread):
        raise ValidationError(sentence_for(ErrorCode.BUSY), code=ErrorCode.BUSY)
    ledger = list(AICall.objects.filter(thread=thread).values_list("pk", "cost"))
    messages, _ = Message.objects.filter(thread=thread).delete()
    run_events, _ = RunEvent.objects.filter(thread=thread).delete()
    ThreadShare.objects.filter(thread=thread).delete()
    ToolCall.objects.filter(thread=thread).delete()
    _, removed = KnowledgeSource.objects.filter(thread_id=thread.pk).delete()
    attachments = removed.get(KnowledgeSource._meta.label, 0)
    event_record(
        group=thread.group,
        type=EventType.THREAD_DELETED,
        actor=actor,
        target=thread,
        metadata={
            "title": thread.title,
            "agent_id": thread.agent_id,
            "author_id": thread.user_id,
            "messages": messages,
            "run_events": run_events,
            "attachments": attachments,
            "ledger_call_ids": [str(pk) for pk, _ in ledger],
            "ledger_cost": str(sum((cost for _, cost in ledger), Decimal(0))),
        },
    )
    title = str(thread)
    thread.delete()
    return ThreadDeleted(
        title=title, messages=messages, run_events=run_events, ledger_calls=len(ledger)
    )


def thread_is_answering(thread: AIThread) -> bool:
    """An answer row still streaming, or a run holding the thread's lock before its row
    exists. chat.runs imports this module, hence the import here."""
    from chat.runs import active_run_id

    streaming = Message.objects.filter(thread=thread, status=Message.Status.STREAMING)
    return streaming.exists() or active_run_id(thread.pk) is not None


@transaction.atomic
def thread_archive(*, thread: AIThread, actor: User, archived: bool = True) -> AIThread:
    """Put a thread away from the list (or bring it back); nothing else about it changes."""
    events = (EventType.THREAD_ARCHIVED, EventType.THREAD_UNARCHIVED)
    return _filing_stamp(thread, actor=actor, field="archived_at", on=archived, events=events)


@transaction.atomic
def thread_pin(*, thread: AIThread, actor: User, pinned: bool = True) -> AIThread:
    """Keep a thread at the top of its author's list (or let it go back in line)."""
    events = (EventType.THREAD_PINNED, EventType.THREAD_UNPINNED)
    return _filing_stamp(thread, actor=actor, field="pinned_at", on=pinned, events=events)


def _filing_stamp(
    thread: AIThread, *, actor: User, field: str, on: bool, events: tuple[EventType, EventType]
) -> AIThread:
    """Set (now) or clear one of the thread's filing stamps and audit it with the first or
    second event. Setting what is already set records nothing: a form sent twice is one
    change."""
    ensure_group_allowed(thread.group)
    if (getattr(thread, field) is not None) == on:
        return thread
    setattr(thread, field, timezone.now() if on else None)
    thread.save(update_fields=[field])
    event_record(group=thread.group, type=events[0 if on else 1], actor=actor, target=thread)
    return thread


SHARE_TOKEN_BYTES = 24  # 192 bits: not guessable, and 32 characters in a link


@transaction.atomic
def thread_share(*, thread: AIThread, actor: User) -> ThreadShare:
    """The thread's read-only link for its group's members: the live one, or a new one.

    One live link per thread (a database constraint); sharing again before a revoke
    hands back the same link, so there is one thing to revoke.
    """
    ensure_group_allowed(thread.group)
    AIThread.objects.select_for_update().filter(pk=thread.pk).first()
    live = selectors.live_share(thread=thread)
    if live is not None:
        return live
    share = ThreadShare.objects.create(
        group=thread.group,
        thread=thread,
        token=secrets.token_urlsafe(SHARE_TOKEN_BYTES),
        created_by=actor,
    )
    event_record(
        group=thread.group,
        type=EventType.THREAD_SHARED,
        actor=actor,
        target=thread,
        metadata={"share_id": share.pk},
    )
    return share


@transaction.atomic
def thread_share_revoke(*, thread: AIThread, actor: User) -> bool:
    """End the thread's link at once; False when there was none. The row stays, revoked,
    so the audit trail's share id still names something until the thread is deleted."""
    ensure_group_allowed(thread.group)
    live = selectors.live_share(thread=thread)
    if live is None:
        return False
    live.revoked_at = timezone.now()
    live.revoked_by = actor
    live.save(update_fields=["revoked_at", "revoked_by"])
    event_record(
        group=thread.group,
        type=EventType.THREAD_SHARE_REVOKED,
        actor=actor,
        target=thread,
        metadata={"share_id": live.pk},
    )
    return True


@transaction.atomic
def thread_agent_switch(*, thread: AIThread, agent: Thing, actor: User) -> AIThread:
    """Answer the thread's next turns with another of the group's active agents; audited.
    Earlier answers keep the agent that wrote them (their ledger rows name it)."""
    _check_agent(thread.group, agent)
    before = thread.agent_id
    if before == agent.pk:
        return thread
    thread.agent = agent
    thread.save(update_fields=["agent"])
    event_record(
        group=thread.group,
        type=EventType.THREAD_AGENT_SWITCHED,
        actor=actor,
        target=thread,
        metadata={"agent_id": [before, agent.pk]},
    )
    return thread
