"""Edit and branch: a conversation is a tree of messages (chat/tree.py). Editing a question
starts a new branch from there, regenerating keeps the earlier answer as an alternative,
`branch.switch` shows another version in every tab and is remembered, and the model is
sent the branch that is shown, nothing else."""

from __future__ import annotations

import importlib
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import selectors
from chat import services as chat_services
from chat.models import Message
from chat.tree import Node, active_path
from ontology.scoping import group_scope
from tests.chat.test_consumers import chat_setup, connect, frames_until, send
from tests.conftest import make_tenant

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Runs belong to the test's event loop: end them with it (a teardown that only cancels
    # the registry's tasks can hang on a cancellation lost in the channel layer's read).
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


def test_the_shown_branch_follows_the_latest_choice_at_every_branch_point():
    now = timezone.now()
    at = [now + timedelta(seconds=n) for n in range(10)]
    nodes = [
        Node("q1", None, at[0], at[0]),
        Node("a1", "q1", at[1], at[1]),
        Node("q1b", None, at[2], at[2]),  # an edit of q1
        Node("a1b", "q1b", at[3], at[3]),
        Node("a1c", "q1b", at[4], at[4]),  # a regenerate of a1b
    ]
    path = active_path(nodes)
    assert [step.id for step in path] == ["q1b", "a1c"]
    assert (path[0].position, path[0].siblings) == (2, ("q1", "q1b"))
    assert (path[1].previous, path[1].next) == ("a1b", None)
    # Switching back to q1 shows its own branch; a1c stays chosen under q1b.
    nodes[0] = Node("q1", None, at[9], at[0])
    assert [step.id for step in active_path(nodes)] == ["q1", "a1"]
    assert active_path([]) == []


@database_sync_to_async
def shown(tenant, thread) -> list[tuple[str, str, str]]:
    with group_scope(tenant.group):
        return [
            (m.role, m.content, f"{m.branch.position}/{len(m.branch.siblings)}")
            for m in selectors.thread_messages(thread=thread)
        ]


def sent_to_model(sim, question: str) -> list[tuple[str, str]]:
    """The conversation the last answer to `question` was asked with (title calls aside)."""
    for entry in reversed(sim.request_log):
        said = [(m["role"], m["content"]) for m in entry["body"].get("messages", [])]
        said = [(role, text) for role, text in said if role != "system"]
        if entry["wire"] == "openai" and said and said[-1] == ("user", question):
            return said
    raise AssertionError(f"no request ends with {question!r}")


async def turn(tab, **frame):
    await send(tab, **frame)
    return await frames_until(tab, "run.completed")


async def test_editing_a_question_branches_and_switching_back_restores_the_old_branch(sim):
    tenant, thread = await chat_setup(model="sim-gpt@text;words=3")
    tab, _ = await connect(thread.pk, tenant.member)
    other, _ = await connect(thread.pk, tenant.member)
    first = await turn(tab, type="message.send", content="Q1")
    await turn(tab, type="message.send", content="Q2")
    await frames_until(other, "run.completed")
    await frames_until(other, "run.completed")
    q1 = first[0]["message"]["id"]

    edited = await turn(tab, type="message.edit", message_id=q1, content="Q1 again", client_id="e")
    branched = next(f for f in edited if f["type"] == "thread.branched")
    assert branched == {"type": "thread.branched", "reload": False}  # from the start
    created = next(f for f in edited if f["type"] == "message.created")
    assert (created["message"]["content"], created["message"]["client_id"]) == ("Q1 again", "e")
    assert sent_to_model(sim, "Q1 again") == [("user", "Q1 again")]  # not the old branch
    path = await shown(tenant, thread)
    assert next((role, text) for role, text, _ in path) == ("user", "Q1 again")
    assert [where for *_, where in path] == ["2/2", "1/1"]

    await frames_until(other, "run.completed")  # the other tab saw the edit's answer too
    await send(tab, type="branch.switch", message_id=q1)
    for socket in (tab, other):
        switched = (await frames_until(socket, "thread.branched"))[-1]
        assert switched == {"type": "thread.branched", "reload": True}
    path = await shown(tenant, thread)
    assert [text for _, text, _ in path][::2] == ["Q1", "Q2"]  # the old branch, whole
    await turn(tab, type="message.send", content="Q3")
    said = sent_to_model(sim, "Q3")
    assert [text for role, text in said if role == "user"] == ["Q1", "Q2", "Q3"]
    await tab.disconnect()
    await other.disconnect()


async def test_a_regenerated_answer_keeps_the_earlier_one_as_an_alternative(sim):
    tenant, thread = await chat_setup(model="sim-gpt@text;words=3")
    tab, _ = await connect(thread.pk, tenant.member)
    first = await turn(tab, type="message.send", content="Q1")
    old = first[1]["message_id"]
    await turn(tab, type="message.regenerate", message_id=old)
    assert [where for *_, where in await shown(tenant, thread)] == ["1/1", "2/2"]
    await send(tab, type="branch.switch", message_id=old)
    await frames_until(tab, "thread.branched")
    path = await shown(tenant, thread)
    assert [where for *_, where in path] == ["1/1", "1/2"]
    await turn(tab, type="message.send", content="Q2")  # continues after the chosen answer

    @database_sync_to_async
    def parent_of_last_question():
        with group_scope(tenant.group):
            return str(Message.objects.get(content="Q2").parent_id)

    assert await parent_of_last_question() == old
    await tab.disconnect()


async def test_switching_is_refused_while_an_answer_is_written_and_for_a_strangers_message(sim):
    tenant, thread = await chat_setup(model="sim-gpt@text;words=400;tps=20")
    tab, _ = await connect(thread.pk, tenant.member)
    first = await turn(tab, type="message.send", content="Hi")
    await send(tab, type="message.send", content="Tell me a story")
    started = (await frames_until(tab, "run.started"))[-1]
    await send(tab, type="branch.switch", message_id=first[0]["message"]["id"])
    assert (await frames_until(tab, "error"))[-1]["code"] == "busy"
    await send(tab, type="run.stop")
    await frames_until(tab, "run.stopped")
    await send(tab, type="branch.switch", message_id=str(uuid.uuid4()))
    assert (await frames_until(tab, "error"))[-1]["code"] == "not_found"
    await send(tab, type="branch.switch", message_id="not-an-id")
    assert (await frames_until(tab, "error"))[-1]["code"] == "bad_frame"
    assert started["message_id"]
    await tab.disconnect()


def test_the_path_fragment_renders_the_branch_after_a_message(sim):
    from asgiref.sync import async_to_sync

    tenant, thread = async_to_sync(chat_setup)(model="sim-gpt@text;words=3")
    with group_scope(tenant.group):
        q1 = chat_services.message_create_user(thread=thread, user=tenant.member, content="Q1")
        q1b = chat_services.message_edit(message=q1, content="Q1b", user=tenant.member)
    client = Client()
    client.force_login(tenant.member)
    url = reverse("thread-path", args=[thread.pk])
    whole = client.get(url).content.decode()
    assert "Q1b" in whole and ">Q1<" not in whole and "2/2" in whole
    assert 'aria-label="Previous version"' in whole
    assert client.get(url, {"after": str(q1b.pk)}).content.decode().strip() == ""
    assert client.get(url, {"after": "nope"}).status_code == 404
    stranger = Client()
    stranger.force_login(make_tenant("elsewhere").member)
    assert stranger.get(url).status_code == 404


def test_existing_threads_become_one_branch_with_set_aside_answers_as_alternatives():
    tenant = make_tenant("legacy")
    with group_scope(tenant.group):
        thread = chat_services.thread_create(
            group=tenant.group, agent=tenant.agent, user=tenant.member
        )
        start = timezone.now()
        rows = [
            ("user", "Q1", "complete"),
            ("assistant", "A1 old", "replaced"),
            ("assistant", "A1", "complete"),
            ("user", "Q2", "complete"),
            ("assistant", "A2", "stopped"),
        ]
        for n, (role, content, status) in enumerate(rows):
            Message.objects.create(
                group=tenant.group,
                thread=thread,
                role=role,
                content=content,
                status=status,
                created_at=start + timedelta(seconds=n),
            )
        migration = importlib.import_module("chat.migrations.0008_message_tree")
        migration.link_messages(apps, None)
        path = selectors.thread_messages(thread=thread)
        assert [(m.content, m.status) for m in path] == [
            ("Q1", "complete"),
            ("A1", "complete"),
            ("Q2", "complete"),
            ("A2", "stopped"),
        ]
        old = Message.objects.get(content="A1 old")
        assert (old.status, old.parent_id) == ("complete", path[0].pk)
        assert path[1].branch.siblings == (old.pk, path[1].pk)
