"""Titles are made on a Celery worker, not in the web process that streams the answers,
and every open tab still hears them."""

import asyncio
import threading

import pytest
from celery.signals import before_task_publish, task_postrun
from channels.db import database_sync_to_async

from tests.chat.test_consumers import chat_setup, connect, frames_until, send, title_calls

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]

TITLE_TASK = "chat.title_thread"


@pytest.fixture
def title_tasks():
    """The title tasks the worker ran in this test (their kwargs and title), and an event
    set when one has ended: the test waits for it, so none outlives the test."""
    ran: list[tuple[dict, str]] = []
    ended = threading.Event()

    def record(sender=None, task=None, kwargs=None, retval=None, **_):
        if task is not None and task.name == TITLE_TASK:
            ran.append((kwargs, retval))
            ended.set()

    task_postrun.connect(record, weak=False)
    yield ran, ended
    task_postrun.disconnect(record)


@pytest.fixture
def published():
    """The names of the tasks queued in this test, as they are queued."""
    names: list[str] = []

    def record(sender=None, **_):
        names.append(sender)

    before_task_publish.connect(record, weak=False)
    yield names
    before_task_publish.disconnect(record)


async def test_the_first_answer_is_titled_on_the_worker_for_every_tab(
    sim, settings, celery_worker, title_tasks, published
):
    settings.PARLEY_TITLES_ON_WORKER = True
    ran, ended = title_tasks
    tenant, thread = await chat_setup(model="sim-gpt")  # the offline model names it
    tab, _ = await connect(thread.pk, tenant.member)
    other, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How do refunds work for damaged goods?")
    await frames_until(tab, "run.completed")
    # queued on the trip that saved the answer, so before the run's last frame was sent
    assert published == [TITLE_TASK]

    for client in (tab, other):  # this process's own tabs hear the worker's title
        updated = (await frames_until(client, "thread.updated"))[-1]
        assert updated["thread"] == {"id": thread.pk, "title": "How do refunds work for damaged"}
    assert await asyncio.to_thread(ended.wait, 30)
    assert ran == [
        (
            {"group_id": tenant.group.pk, "thread_id": thread.pk, "user_id": tenant.member.pk},
            "How do refunds work for damaged",
        )
    ]
    await database_sync_to_async(thread.refresh_from_db)()
    assert thread.title == "How do refunds work for damaged"
    [call] = await title_calls(tenant)  # metered like any other call, on the worker too
    assert (call.status, call.thread_id, call.user_id) == ("ok", thread.pk, tenant.member.pk)
    assert call.cost > 0
    for client in (tab, other):
        await client.disconnect()


async def test_a_thread_titled_before_the_task_runs_is_left_alone(
    sim, settings, celery_worker, title_tasks
):
    """A person who typed a title first keeps it: the task makes no model call."""
    from chat.tasks import title_thread

    ran, ended = title_tasks
    tenant, thread = await chat_setup(model="sim-gpt")
    thread.title = "Typed by a person"
    await database_sync_to_async(thread.save)(update_fields=["title"])
    requests = len(sim.request_log)
    await asyncio.to_thread(
        title_thread.apply_async,
        kwargs={"group_id": tenant.group.pk, "thread_id": thread.pk, "user_id": None},
    )
    assert await asyncio.to_thread(ended.wait, 30)
    assert ran[-1][1] == ""
    assert len(sim.request_log) == requests
    await database_sync_to_async(thread.refresh_from_db)()
    assert thread.title == "Typed by a person"


async def test_a_broker_that_refuses_the_title_leaves_it_to_the_web_process(
    sim, settings, monkeypatch
):
    import chat.runs

    def refused(**_):
        raise ConnectionError("the broker is away")

    settings.PARLEY_TITLES_ON_WORKER = True
    monkeypatch.setattr(chat.runs, "title_later", refused)
    tenant, thread = await chat_setup(model="sim-gpt")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How do refunds work for damaged goods?")
    completed = (await frames_until(tab, "run.completed"))[-1]
    assert completed["type"] == "run.completed"  # the answer is saved all the same
    updated = (await frames_until(tab, "thread.updated"))[-1]
    assert updated["thread"] == {"id": thread.pk, "title": "How do refunds work for damaged"}
    await tab.disconnect()
