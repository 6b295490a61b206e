"""The JSON API's reads, as pages with stable cursors (sync: call through db_call).

Every read starts from chat.selectors (who may read which thread) inside the token's
group scope, so another tenant's row and a colleague's thread are simply not found.
"""

from __future__ import annotations

import uuid

from agents.models import Agent
from chat import selectors
from chat.models import AIThread, Message, RunEvent
from ontology.models import Group, User


def threads_page(
    *, group: Group, user: User, before: int | None, limit: int
) -> tuple[list[AIThread], int | None]:
    """Threads the user may read, newest first by id (an order a new thread or a new
    message cannot shuffle between two pages); the next page's cursor, if there is one."""
    threads = selectors.readable_threads(group=group, user=user).select_related("agent")
    if before is not None:
        threads = threads.filter(pk__lt=before)
    page = list(threads.order_by("-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].pk if more else None)


def messages_page(
    *, thread: AIThread, after: uuid.UUID | None, limit: int
) -> tuple[list[Message], str | None] | None:
    """The thread's shown branch (chat.tree: what the page shows, what the model is sent),
    root first, after the message `after`; None when `after` is not on it."""
    steps = selectors.thread_path(thread=thread)
    ids = [step.id for step in steps]
    if after is not None:
        if after not in ids:
            return None
        ids = ids[ids.index(after) + 1 :]
    more = len(ids) > limit
    ids = ids[:limit]
    rows = Message.objects.filter(thread=thread).in_bulk(ids)
    page = [rows[pk] for pk in ids]
    return page, (str(page[-1].pk) if more else None)


def agent_of_group(agent_id: int) -> Agent | None:
    """One of the active group's agents, whatever its status (the scoped manager is the
    tenant check)."""
    return Agent.objects.filter(pk=agent_id).first()


def stored_message(*, thread: AIThread, message_id: str | None) -> Message | None:
    if not message_id:
        return None
    return Message.objects.filter(thread=thread, pk=message_id).first()


def run_known(*, thread: AIThread, run_id: str) -> bool:
    """Has the run logged anything in this thread?"""
    return RunEvent.objects.filter(thread=thread, run_id=run_id).exists()
