"""Write paths for conversations. Each change records its Event in the same transaction."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from chat import selectors
from chat.models import AIThread, Message
from ontology.events import EventType
from ontology.models import Group, Membership, Thing, User
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


@transaction.atomic
def message_create_user(
    *, thread: AIThread, user: User, content: str, client_id: str = ""
) -> Message:
    ensure_group_allowed(thread.group)
    message = Message.objects.create(
        group=thread.group,
        thread=thread,
        role=Message.Role.USER,
        user=user,
        content=content,
        client_id=client_id[:64],
    )
    thread.last_activity_at = message.created_at
    thread.save(update_fields=["last_activity_at"])
    event_record(
        group=thread.group,
        type=EventType.MESSAGE_SENT,
        actor=user,
        target=message,
        metadata={"thread_id": thread.pk, "chars": len(content)},
    )
    return message


def assistant_message_start(
    *, thread: AIThread, run_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    """The placeholder the answer streams into; finished by assistant_message_finish.

    One INSERT, so no transaction of its own. Its audit Event is written by
    assistant_message_finish, with the outcome.
    """
    ensure_group_allowed(thread.group)
    return Message.objects.create(
        id=message_id,
        group=thread.group,
        thread=thread,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        run_id=run_id,
    )


EVENT_FOR_STATUS = {
    Message.Status.COMPLETE: EventType.ANSWER_COMPLETED,
    Message.Status.STOPPED: EventType.ANSWER_STOPPED,
    Message.Status.ERROR: EventType.ANSWER_FAILED,
    Message.Status.INTERRUPTED: EventType.ANSWER_INTERRUPTED,
}


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
    """Write the answer, its ledger rows, the audit Event and the thread's activity at once."""
    ensure_group_allowed(message.group)
    message.status = status
    message.content = content
    message.tool_calls = tool_calls
    message.sources = sources
    message.usage = usage
    message.error_code = error_code
    message.updated_at = timezone.now()
    message.save()
    if ledger_write is not None:
        ledger_write()
    AIThread.objects.filter(pk=message.thread_id).update(last_activity_at=message.updated_at)
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
    )
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
    """Set an answer aside for a regenerated one; it stays in the record, out of the history."""
    ensure_group_allowed(message.group)
    last = (
        Message.objects.filter(thread_id=message.thread_id)
        .exclude(status=Message.Status.REPLACED)
        .order_by("-created_at", "-id")
        .first()
    )
    if (
        message.role != Message.Role.ASSISTANT
        or last is None
        or last.pk != message.pk
        or message.status == Message.Status.STREAMING
    ):
        raise ValidationError({"message_id": "Only the last finished answer can be regenerated."})
    message.status = Message.Status.REPLACED
    message.save(update_fields=["status"])
    event_record(
        group=message.group,
        type=EventType.MESSAGE_REPLACED,
        actor=actor,
        target=message,
        metadata={"thread_id": message.thread_id},
    )
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
