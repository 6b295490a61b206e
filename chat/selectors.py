"""Read paths for conversations. Tenant-owned reads go through the scoped managers."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from chat.models import AIThread, Message, RunEvent
from ontology.models import Group, Thing, User
from ontology.scoping import group_scope
from ontology.selectors import groups_for_user


def thread_for_member(*, user: User, thread_id: int) -> tuple[Group, AIThread] | None:
    """The thread and its group if the user is a member of that group; else None.

    Missing and forbidden look the same to the caller.
    """
    for group in groups_for_user(user=user):
        with group_scope(group):
            thread = AIThread.objects.filter(pk=thread_id).first()
        if thread is not None:
            thread.group = group  # what the socket does next reads it from here
            return group, thread
    return None


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }


def latest_run_id(*, thread: AIThread):
    with group_scope(thread.group):
        return (
            RunEvent.objects.filter(thread=thread)
            .order_by("-created_at", "-seq")
            .values_list("run_id", flat=True)
            .first()
        )


def run_events(*, thread: AIThread, run_id, after_seq: int, before_seq: int | None = None):
    with group_scope(thread.group):
        events = RunEvent.objects.filter(thread=thread, run_id=run_id, seq__gt=after_seq)
        if before_seq is not None:
            events = events.filter(seq__lt=before_seq)
        return [event.payload for event in events.order_by("seq")]


def message_in_thread(*, thread: AIThread, message_id) -> Message | None:
    with group_scope(thread.group):
        return Message.objects.filter(thread=thread, pk=message_id).first()


def threads_for_list(
    *, group: Group, user: User, query: str = "", everyone: bool = False
) -> QuerySet[AIThread]:
    """The group's threads, newest activity first: the user's own unless `everyone`.

    A query matches the title or any visible message of the thread.
    """
    threads = AIThread.objects.filter(group=group).select_related("agent")
    if not everyone:
        threads = threads.filter(user=user)
    query = query.strip()
    if query:
        matching = Message.objects.filter(group=group, content__icontains=query).exclude(
            status=Message.Status.REPLACED
        )
        threads = threads.filter(Q(title__icontains=query) | Q(pk__in=matching.values("thread_id")))
    return threads.order_by("-last_activity_at", "-pk")


def untouched_thread(*, group: Group, user: User, agent: Thing) -> AIThread | None:
    """The user's newest thread with the agent that has no title and no message yet."""
    said = Message.objects.filter(group=group, thread=OuterRef("pk"))
    return (
        AIThread.objects.filter(group=group, user=user, agent=agent, title="")
        .exclude(Exists(said))
        .order_by("-pk")
        .first()
    )


def thread_in_group(*, group: Group, thread_id: int) -> AIThread | None:
    return AIThread.objects.filter(group=group, pk=thread_id).select_related("agent").first()


def thread_messages(*, thread: AIThread) -> list[Message]:
    """What a reader sees: everything but answers set aside by a regenerate."""
    return list(
        Message.objects.filter(thread=thread)
        .exclude(status=Message.Status.REPLACED)
        .order_by("created_at", "id")
    )


def last_answer_id(*, thread: AIThread):
    """The id of the thread's last visible message if it is an answer (the one to regenerate)."""
    last = (
        Message.objects.filter(thread=thread)
        .exclude(status=Message.Status.REPLACED)
        .order_by("-created_at", "-id")
        .values_list("pk", "role")
        .first()
    )
    return last[0] if last is not None and last[1] == Message.Role.ASSISTANT else None
