"""Read paths for conversations. Tenant-owned reads go through the scoped managers."""

from __future__ import annotations

from typing import Any

from chat.models import AIThread, Message, RunEvent
from ontology.models import Group, User
from ontology.scoping import group_scope
from ontology.selectors import groups_for_user


def thread_for_member(*, user: User, thread_id: int) -> tuple[Group, AIThread] | None:
    """The thread and its group if the user is a member of that group; else None.

    Missing and forbidden look the same to the caller.
    """
    group_ids = list(groups_for_user(user=user).values_list("pk", flat=True))
    for group in Group.objects.filter(pk__in=group_ids):
        with group_scope(group):
            thread = AIThread.objects.filter(pk=thread_id).first()
        if thread is not None:
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
