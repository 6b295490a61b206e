"""Tasks queued with no result object (ontology.queueing): the same message as Celery's own
`apply_async` would send, without the per-thread result backend."""

import threading

import pytest
from celery.signals import before_task_publish

from chat.tasks import title_thread
from config.celery import app
from ontology import queueing

KWARGS = {"group_id": 0, "thread_id": 0, "user_id": None}  # no such group: a no-op anyway


@pytest.fixture
def private_queue():
    """A queue no worker reads, emptied after the test (a message left in a queue a worker
    reads would run in some later test)."""
    name = "parley-test-queueing"
    yield name
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(name)


def waiting(name: str) -> int:
    with app.connection_for_write() as connection:
        return connection.default_channel.client.llen(name)


@pytest.fixture
def captured():
    """The messages published during the test, as Celery is about to send them."""
    messages: list[dict] = []

    def capture(sender=None, body=None, routing_key=None, headers=None, **_):
        messages.append(
            {"task": sender, "routing_key": routing_key, "headers": dict(headers), "body": body}
        )

    before_task_publish.connect(capture, weak=False)
    yield messages
    before_task_publish.disconnect(capture)


@pytest.fixture
def backends_made(monkeypatch):
    """The threads on which Celery built a result backend during the test."""
    made: list[str] = []
    build = app._get_backend

    def counted():
        made.append(threading.current_thread().name)
        return build()

    monkeypatch.setattr(app, "_get_backend", counted)
    return made


def on_a_new_thread(publish) -> None:
    """Publish from a fresh thread, as a database thread's first publish is made."""
    raised: list[BaseException] = []

    def run():
        try:
            publish()
        except BaseException as problem:  # raised again in the test
            raised.append(problem)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if raised:
        raise raised[0]


def test_a_queued_task_is_the_message_apply_async_sends(private_queue, captured):
    on_a_new_thread(
        lambda: queueing.queue(title_thread, kwargs=KWARGS, retry=False, queue=private_queue)
    )
    on_a_new_thread(
        lambda: title_thread.apply_async(kwargs=KWARGS, retry=False, queue=private_queue)
    )
    assert waiting(private_queue) == 2
    queued, celerys = captured
    assert queued["task"] == celerys["task"] == "chat.title_thread"
    assert queued["routing_key"] == celerys["routing_key"] == private_queue
    assert queued["body"][1] == celerys["body"][1] == KWARGS  # (args, kwargs, embed)
    for header in ("task", "kwargsrepr", "argsrepr", "ignore_result", "retries"):
        assert queued["headers"][header] == celerys["headers"][header], header
    assert queued["headers"]["ignore_result"] is True
    assert queued["headers"]["id"] != celerys["headers"]["id"]


def test_queueing_builds_no_result_backend_on_the_thread(private_queue, backends_made):
    on_a_new_thread(
        lambda: queueing.queue(title_thread, kwargs=KWARGS, retry=False, queue=private_queue)
    )
    assert waiting(private_queue) == 1  # published, for real
    assert backends_made == []
    # Celery's own way builds one for each new thread that publishes: what is avoided
    on_a_new_thread(
        lambda: title_thread.apply_async(kwargs=KWARGS, retry=False, queue=private_queue)
    )
    assert waiting(private_queue) == 2
    assert len(backends_made) == 1


def test_warm_readies_the_registry_the_producer_pool_and_the_sender():
    vars(app.amqp).pop("send_task_message", None)  # as if nothing had been published yet
    queueing.warm()
    assert app.finalized
    assert "chat.title_thread" in app.tasks
    assert app.amqp._producer_pool is not None
    assert "send_task_message" in vars(app.amqp)  # the sender made (a cached property)
