"""A turn starts in one trip to a database thread: the lock, the rate limit, the question
and the run's own set-up (its agent and the history it sends) together."""

import pytest
from channels.db import database_sync_to_async

from chat.runs import registry
from chat.turns import send_message
from ontology import services
from tests.chat.test_consumers import chat_setup, connect, frames_until, send

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


async def test_a_run_is_set_up_before_its_turn_returns_with_the_question_in_its_history(sim):
    tenant, thread = await chat_setup()
    run_id, _ = await send_message(
        group=tenant.group, thread=thread, user=tenant.member, content="Where is the policy?"
    )
    run = registry().runs[thread.pk]
    assert run.run_id == run_id
    # Nothing has run of the run's own task yet: its set-up came with the question's trip.
    assert run.setup is not None
    assert run.setup.history[-1] == ("user", "Where is the policy?")
    assert run.setup.agent.id == thread.agent_id


async def test_an_agent_switched_off_fails_the_run_as_it_starts(sim):
    tenant, thread = await chat_setup()

    def switch_off():
        services.thing_update(thing=thread.agent, actor=tenant.owner, status="disabled")

    await database_sync_to_async(switch_off)()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hello?")
    frames = await frames_until(tab, "error")
    assert frames[-1]["code"] == "agent_unavailable"
    assert "run.started" not in [f["type"] for f in frames]
    await tab.disconnect()


async def test_a_socket_opens_in_one_trip_to_a_database_thread(sim, monkeypatch):
    """Its user, the thread and whether an answer streams on it are read together; the
    run's lock is read in the event loop."""
    from ontology.db_async import _request_pool

    tenant, thread = await chat_setup()
    pool, trips = _request_pool(), []
    submit = pool.submit
    monkeypatch.setattr(pool, "submit", lambda *a, **k: trips.append(a[0]) or submit(*a, **k))
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="stream.resume", after_seq=0)
    resumed = await frames_until(tab, "stream.resumed")
    assert (resumed[-1]["last_seq"], resumed[-1]["streaming"]) == (0, False)
    sweep = "mark_interrupted_runs"  # the process's own, not the socket's
    names = [t.args[-1].func.__name__ for t in trips if t.args[-1].func.__name__ != sweep]
    # The open, then the resume's look at the answer's row and at the latest run.
    assert names == ["_who_and_where", "streaming_run", "latest_run_id"]
    await tab.disconnect()
