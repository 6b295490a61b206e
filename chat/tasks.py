"""Celery tasks of the chat app: naming a thread after its first answer (chat/titles.py)."""

from __future__ import annotations

import asyncio

from celery import shared_task

from agents.providers.registry import close_clients
from chat.models import AIThread
from chat.titles import name_thread
from ontology.models import Group, User
from ontology.scoping import group_scope


@shared_task(
    name="chat.title_thread", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def title_thread(*, group_id: int, thread_id: int, user_id: int | None = None) -> str:
    """Name the thread unless it has a title by now (a repeated task makes no second call
    once the first saved its title; the title call itself is metered like any other)."""
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return ""
    with group_scope(group):
        thread = AIThread.objects.filter(pk=thread_id).first()
    if thread is None or thread.title:
        return ""
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    return asyncio.run(_name(group, thread, user))


async def _name(group: Group, thread: AIThread, user: User | None) -> str:
    try:
        return await name_thread(group=group, thread=thread, user=user, from_worker=True)
    finally:
        await close_clients()  # this loop's SDK clients end with it
