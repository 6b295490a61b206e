"""Starting a turn on a thread, for every client alike (the socket, the JSON API, the
OpenAI-compatible endpoint): the thread's lock, the message rate limit, the question
saved (or an answer set aside), the run started, and every tab told what changed.

Refusals are exceptions each client words in its own shape: `Busy` (another run holds
the thread), `RateLimited` (its `retry_after`), `ValidationError` (the text).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.counters import Claim
from billing.ratelimits import RateLimited, message_counted
from chat import services
from chat.conversation import ThreadConversation
from chat.fanout import broadcast
from chat.frames import MessageCreated, MessageReplaced, ThreadBranched, ThreadUpdated, to_wire
from chat.models import AIThread, Message
from chat.runs import Busy, registry
from chat.selectors import message_payload
from ontology.db_async import db_call
from ontology.models import Group, Thing, User
from ontology.scoping import group_scope
from ontology.versions import group_version_key, group_version_of


async def send_message(
    *,
    group: Group,
    thread: AIThread,
    user: User,
    content: str,
    client_id: str = "",
    agent_id: int | None = None,
) -> tuple[uuid.UUID, Message]:
    """Save the user's question and start the answer; (run id, the question). With
    `agent_id`, the thread switches to that agent of the group first (for this answer and
    the next ones)."""

    switched: list[Thing] = []
    conversation = ThreadConversation(group=group, thread=thread)

    def save_question() -> Message:
        with group_scope(group), transaction.atomic():
            switched.extend(_switch_agent(thread, user, agent_id))
            return conversation.ask(user=user, content=content, client_id=client_id)

    return await _start(
        group,
        thread,
        user,
        save_question,
        client_id=client_id,
        switched=switched,
        conversation=conversation,
    )


async def regenerate(
    *, group: Group, thread: AIThread, user: User, message: Message, agent_id: int | None = None
) -> tuple[uuid.UUID, Message]:
    """Set the answer aside and answer its question again, with `agent_id`'s agent when
    given; (run id, the answer set aside)."""

    switched: list[Thing] = []

    def set_aside() -> Message:
        with group_scope(group), transaction.atomic():
            switched.extend(_switch_agent(thread, user, agent_id))
            return services.message_replace(message=message, actor=user)

    return await _start(group, thread, user, set_aside, switched=switched, replaces=True)


async def edit_message(
    *,
    group: Group,
    thread: AIThread,
    user: User,
    message: Message,
    content: str,
    client_id: str = "",
    agent_id: int | None = None,
) -> tuple[uuid.UUID, Message]:
    """Ask an edited version of a question (a new branch from there, chat.tree) and answer
    it; (run id, the new question)."""
    switched: list[Thing] = []

    def save_edit() -> Message:
        with group_scope(group), transaction.atomic():
            switched.extend(_switch_agent(thread, user, agent_id))
            return services.message_edit(
                message=message, content=content, user=user, client_id=client_id
            )

    return await _start(
        group, thread, user, save_edit, client_id=client_id, switched=switched, branches=True
    )


async def switch_branch(*, group: Group, thread: AIThread, message: Message) -> None:
    """Show the branch through `message` in every tab. Refused (Busy) while an answer is
    being written: the run is writing into the branch that is shown."""

    def select() -> None:
        with group_scope(group), transaction.atomic():
            AIThread.objects.select_for_update().filter(pk=thread.pk).first()
            if services.thread_is_answering(thread):
                raise Busy()
            services.branch_select(message=message)

    await db_call(select)()
    after = str(message.parent_id) if message.parent_id else None
    await broadcast(thread.pk, to_wire(ThreadBranched(after=after, reload=True)))


def _switch_agent(thread: AIThread, user: User, agent_id: int | None) -> list[Thing]:
    """Inside the thread's lock, before the run reads its agent (it reads `thread`): the
    agent switched to, or nothing."""
    if agent_id is None or agent_id == thread.agent_id:
        return []
    agent = Thing.objects.filter(pk=agent_id, type=Thing.Type.AGENT).first()
    if agent is None:
        raise ValidationError({"agent_id": "That agent is not in your organisation."})
    services.thread_agent_switch(thread=thread, agent=agent, actor=user)
    return [agent]


async def _start(
    group: Group,
    thread: AIThread,
    user: User,
    before: Callable[[], Any],
    *,
    client_id: str = "",
    switched: list[Thing] | None = None,
    replaces: bool = False,
    branches: bool = False,
    conversation: ThreadConversation | None = None,
) -> tuple[uuid.UUID, Message]:
    def admit(claim: Claim) -> str | None:
        """The thread's lock and the message's count in one Redis round trip, first on the
        start's trip to a database thread, which also reads the group's configuration
        version: counted only once the thread is free, so a send refused as busy uses none
        of it. (A send refused by the lock's durable half, in the second after Redis lost a
        streaming run's lock, is counted.)"""
        version_key = group_version_key(group.pk)
        counted = message_counted(user=user, group=group, claim=claim, peek=[version_key])
        if not counted.tally.claimed:
            raise Busy
        if counted.retry_after is not None:
            raise RateLimited(counted.retry_after)
        return group_version_of(counted.tally.peeked[0])

    def notices(message: Message) -> list[dict[str, Any]]:
        """What every tab hears before the run starts, in this order."""
        events = []
        for agent in switched or ():  # every tab shows who answers now
            update = {"id": thread.pk, "agent": {"id": agent.pk, "name": agent.name}}
            events.append(to_wire(ThreadUpdated(thread=update)))
        if branches:  # tabs drop the edited question and what followed it
            after = str(message.parent_id) if message.parent_id else None
            events.append(to_wire(ThreadBranched(after=after, reload=False)))
        if replaces:  # tabs drop the answer; the regenerated one streams in its place
            events.append(to_wire(MessageReplaced(message_id=str(message.pk))))
        else:
            payload = {**message_payload(message), "client_id": client_id}
            events.append(to_wire(MessageCreated(message=payload)))
        return events

    return await registry().start(
        group=group,
        thread=thread,
        user=user,
        admit=admit,
        before=before,
        conversation=conversation,
        notices=notices,
    )
