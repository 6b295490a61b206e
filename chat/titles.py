"""Naming a thread after its first answer, away from the process that streams answers.

A title is a second model call that nobody waits for. The run that ends a thread's
first exchange (finished or stopped) hands it to a Celery worker (`chat.title_thread`,
on the "default" queue), so a web process spends its CPU on the streams people watch;
when the broker will not take the task, the run's own process names the thread as before.
Either way every open tab hears the title (`thread.updated`).
"""

from __future__ import annotations

import logging

from django.conf import settings

from agents.engine.titles import generate_title
from chat import selectors, services
from chat.fanout import broadcast
from chat.frames import ThreadUpdated, to_wire
from chat.models import AIThread
from ontology import queueing
from ontology.db_async import db_call
from ontology.models import Group, User
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)


async def propose_title(*, group: Group, thread: AIThread, user: User | None) -> str:
    """A title for an untitled thread's first exchange ("" when titled or nothing to name)."""

    def read() -> tuple[str, str] | None:
        with group_scope(group):
            return selectors.first_exchange(thread=thread)

    exchange = await db_call(read)()
    if exchange is None:
        return ""
    question, answer = exchange
    return await generate_title(
        group=group,
        thread_id=thread.pk,
        agent_id=thread.agent_id,
        question=question,
        answer=answer,
        user=user,
    )


async def name_thread(
    *, group: Group, thread: AIThread, user: User | None, from_worker: bool = False
) -> str:
    """Title an untitled thread and tell every open tab; the title, or "" when the thread
    has one already (a person may have typed it meanwhile) or nothing came of it."""
    try:
        title = await propose_title(group=group, thread=thread, user=user)

        def save() -> bool:
            with group_scope(group):
                return services.thread_title_generated(thread=thread, title=title)

        if not title or not await db_call(save)():
            return ""
    except Exception:
        logger.exception("could not title thread %s", thread.pk)
        return ""
    update = to_wire(ThreadUpdated(thread={"id": thread.pk, "title": title}))
    await broadcast(thread.pk, update, from_worker=from_worker)
    return title


def title_later(*, group: Group, thread: AIThread, user: User | None) -> None:
    """Queue the thread's naming for a worker (sync: it talks to the broker). One try, not
    Celery's retries: the answer's last frame waits for it (chat.runs._TitleOnFinish),
    and a refusal is titled in the web process instead. No result object is made (see
    ontology.queueing): nobody reads the task's result."""
    from chat.tasks import title_thread  # the task module imports this one

    queueing.queue(
        title_thread,
        kwargs={"group_id": group.pk, "thread_id": thread.pk, "user_id": getattr(user, "pk", None)},
        retry=False,
    )


def prepare() -> None:
    """A serving process's one-time set-up for queueing titles, done as it starts
    (config.asgi.prepare_process) rather than in the turns that queue its first titles:
    the task's module and Celery's task registry, transport and producer pool
    (ontology.queueing.warm). No network: the broker is reached by the first title."""
    if not settings.PARLEY_TITLES_ON_WORKER:
        return
    import chat.tasks  # noqa: F401 (the task module imports this one)

    queueing.warm()
