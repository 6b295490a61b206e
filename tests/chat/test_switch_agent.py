"""Switching a thread's agent for the next answer: `agent_id` on `message.send` and
`message.regenerate`. The thread answers with that agent from then on, every tab hears
it, the switch is audited and the ledger names the agent that answered; an agent of
another organisation, or one switched off, is refused with nothing stored."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from billing.models import AICall
from chat.models import AIThread, Message
from ontology import services
from ontology.models import Event, Thing
from ontology.scoping import group_scope
from tests.chat.test_consumers import chat_setup, connect, frames_until, send
from tests.conftest import make_tenant

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Runs belong to the test's event loop: end them with it (a teardown that only cancels
    # the registry's tasks can hang on a cancellation lost in the channel layer's read).
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


@database_sync_to_async
def second_agent(tenant, *, name="Second agent", status=Thing.Status.ACTIVE):
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name=name,
        actor=tenant.owner,
        properties={"provider": "simulator", "model": "sim-gpt@text;words=8"},
    )
    if status != Thing.Status.ACTIVE:
        services.thing_update(thing=agent, actor=tenant.owner, status=status)
    return agent


@database_sync_to_async
def state(tenant, thread):
    with group_scope(tenant.group):
        thread = AIThread.objects.get(pk=thread.pk)
        calls = list(
            AICall.objects.filter(purpose=AICall.Purpose.CHAT)
            .order_by("created_at")
            .values_list("agent_id", flat=True)
        )
        switches = list(
            Event.objects.filter(type="thread.agent_switched").values_list("metadata", flat=True)
        )
        questions = Message.objects.filter(role=Message.Role.USER).count()
    return thread.agent_id, calls, switches, questions


async def test_a_message_can_switch_the_thread_to_another_agent_for_every_tab(sim):
    tenant, thread = await chat_setup()
    other = await second_agent(tenant)
    tab, _ = await connect(thread.pk, tenant.member)
    watcher, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="First question")
    await frames_until(tab, "run.completed")
    await frames_until(watcher, "run.completed")

    await send(tab, type="message.send", content="Second question", agent_id=other.pk)
    for socket in (tab, watcher):
        frames = await frames_until(socket, "run.completed")
        updated = next(
            f for f in frames if f["type"] == "thread.updated" and "agent" in f["thread"]
        )
        assert updated["thread"]["agent"] == {"id": other.pk, "name": "Second agent"}
    await send(tab, type="message.send", content="Third question")  # stays switched
    await frames_until(tab, "run.completed")
    agent_id, calls, switches, questions = await state(tenant, thread)
    assert agent_id == other.pk
    assert calls == [thread.agent_id, other.pk, other.pk]  # each answer billed to its agent
    assert switches == [{"agent_id": [thread.agent_id, other.pk]}]
    assert questions == 3
    await tab.disconnect()
    await watcher.disconnect()


async def test_regenerate_can_answer_again_with_another_agent(sim):
    tenant, thread = await chat_setup()
    other = await second_agent(tenant)
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hi")
    first = await frames_until(tab, "run.completed")
    await send(tab, type="message.regenerate", message_id=first[1]["message_id"], agent_id=other.pk)
    await frames_until(tab, "run.completed")
    agent_id, calls, _, _ = await state(tenant, thread)
    assert agent_id == other.pk and calls[-1] == other.pk
    await tab.disconnect()


async def test_another_organisations_or_a_switched_off_agent_is_refused_with_nothing_stored(sim):
    tenant, thread = await chat_setup()
    stranger = await database_sync_to_async(make_tenant)("elsewhere")
    paused = await second_agent(tenant, name="Paused", status=Thing.Status.DISABLED)
    tab, _ = await connect(thread.pk, tenant.member)
    for agent_id, words in (
        (stranger.agent.pk, "not in your organisation"),
        (paused.pk, "not available"),
    ):
        await send(tab, type="message.send", content="Hi", agent_id=agent_id)
        refused = (await frames_until(tab, "error"))[-1]
        assert refused["code"] == "invalid" and words in refused["message"]
    await send(tab, type="message.send", content="Hi", agent_id="3")
    assert (await frames_until(tab, "error"))[-1]["code"] == "bad_frame"
    agent_id, calls, switches, questions = await state(tenant, thread)
    assert (agent_id, calls, switches, questions) == (thread.agent_id, [], [], 0)
    await tab.disconnect()


def test_a_program_switches_the_agent_with_the_json_api(sim):
    from django.test import Client

    from tests.api.test_openai_requests import bearer

    tenant, thread = async_to_sync(chat_setup)()
    other = async_to_sync(second_agent)(tenant)
    headers = bearer(tenant, "chat")
    url = f"/api/v1/threads/{thread.pk}/messages"
    answered = Client().post(
        url,
        {"content": "Hello", "agent_id": other.pk},
        content_type="application/json",
        headers=headers,
    )
    assert answered.status_code == 200, answered.content
    assert answered.json()["run"]["status"] == "completed"
    agent_id, calls, _, _ = async_to_sync(state)(tenant, thread)
    assert (agent_id, calls) == (other.pk, [other.pk])
    refused = Client().post(
        url, {"content": "Hi", "agent_id": "x"}, content_type="application/json", headers=headers
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"
