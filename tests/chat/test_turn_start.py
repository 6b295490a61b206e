"""A turn starts in one Redis call from the event loop (the lock, the rate limit, the
agents' version) and one trip to a database thread (the question and the run's own set-up:
its agent and the history it sends)."""

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
import redis
import redis.asyncio
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from chat.models import Message
from chat.runs import STALE_AFTER, Busy, _lock_key, registry
from chat.turns import send_message
from ontology import services
from ontology.autopipeline import AutoPipeline
from ontology.models import Event
from ontology.scoping import group_scope
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


class Heard:
    """A listener of the thread in this process that notes the turn of the loop each event
    came in (a callback rescheduling itself counts the turns)."""

    def __init__(self) -> None:
        self.turn = 0
        self.events: list[tuple[str, int]] = []
        self._ticking = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if self._ticking:
            self.turn += 1
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._ticking = False

    async def deliver(self, event) -> None:
        self.events.append((event["type"], self.turn))


async def test_run_started_goes_out_in_the_same_turn_of_the_loop_as_the_question(sim):
    """The start sends its notices, then `run.started`, before anything else runs: the run's
    task would send it a turn later, behind every stream's deltas."""
    from chat.fanout import local_fanout

    tenant, thread = await chat_setup()
    heard = Heard()
    local_fanout().add(thread.pk, heard)
    try:
        await send_message(group=tenant.group, thread=thread, user=tenant.member, content="Hi")
    finally:
        heard.stop()
        local_fanout().discard(thread.pk, heard)
    (created, started) = heard.events[:2]
    assert (created[0], started[0]) == ("message.created", "run.started")
    assert created[1] == started[1]


async def test_a_socket_opening_as_a_run_starts_here_hears_it_whole_without_run_active(sim):
    """The run's lock is taken first on its start's trip; a socket that opens then (in this
    process's fanout before the run sends anything) hears it from `seq` 1, so it is not told
    `run.active` as well (which would have it resume a run it already has)."""
    from billing.ratelimits import message_counted

    tenant, thread = await chat_setup()
    locked, go_on = threading.Event(), threading.Event()

    def admit(claim):
        counted = message_counted(user=tenant.member, group=tenant.group, claim=claim)
        assert counted.tally.claimed
        locked.set()
        assert go_on.wait(10)  # the start waits on its trip, its lock held
        return None

    starting = asyncio.ensure_future(
        registry().start(group=tenant.group, thread=thread, user=tenant.member, admit=admit)
    )
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        opened, _ = await connect(thread.pk, tenant.member)
    finally:
        go_on.set()
    run_id, _ = await starting
    frames = await frames_until(opened, "run.completed", "run.active")
    assert frames[0] == {**frames[0], "type": "run.started", "run_id": str(run_id), "seq": 1}
    assert frames[-1]["type"] == "run.completed"
    await opened.disconnect()


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
    from ontology.db_async import ManyOnOneTrip, _request_pool, _trip

    tenant, thread = await chat_setup()
    pool, trips = _request_pool(), []
    submit = pool.submit
    monkeypatch.setattr(pool, "submit", lambda *a, **k: trips.append(a) or submit(*a, **k))
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="stream.resume", after_seq=0)
    resumed = await frames_until(tab, "stream.resumed")
    assert (resumed[-1]["last_seq"], resumed[-1]["streaming"]) == (0, False)
    sweep = "mark_interrupted_runs"  # the process's own, not the socket's

    def named(trip) -> str:
        if trip[0] is _trip:  # calls sharing a trip: their batcher's work, with the calls
            batcher, calls = trip[-1].func.__self__, trip[-1].args[0]
            if isinstance(batcher, ManyOnOneTrip):  # one function answering them all
                return batcher.many.__name__
            return "+".join(sorted({func.__name__ for _, func, _, _ in calls}))
        return trip[0].args[-1].func.__name__  # db_call's

    names = [named(t) for t in trips if named(t) != sweep]
    # The open, then the resume's look at the answer's row and at the latest run.
    assert names == ["_who_and_where_together", "streaming_run", "latest_run_id"]
    await tab.disconnect()


async def sent_recording_statements(monkeypatch, tenant, thread) -> tuple[list[str], tuple]:
    """The statements executed (on any thread) while a turn starts, and what it returned."""
    statements, execute = [], CursorWrapper.execute

    def recorded(cursor, sql, params=None):
        statements.append(sql)
        return execute(cursor, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", recorded)
    sent = await send_message(group=tenant.group, thread=thread, user=tenant.member, content="Hi?")
    monkeypatch.undo()
    return statements, sent


async def test_a_turn_reads_the_threads_messages_once_to_start(sim, monkeypatch):
    """The look for an answer still streaming (the lock's durable half) and the place of
    the question come from one read of the thread's messages."""
    tenant, thread = await chat_setup()
    statements, _ = await sent_recording_statements(monkeypatch, tenant, thread)
    by_thread = '"chat_message"."thread_id" = %s'  # not the sweep's join
    reads = [s for s in statements if s.startswith("SELECT") and by_thread in s]
    assert len(reads) == 1, reads
    await frames_of_the_run_end(tenant, thread)


async def test_a_turns_rows_are_written_in_one_statement_as_it_starts(sim, monkeypatch):
    """The question, the thread's last activity, the question's audit event and the
    answer's row: one statement on the start's trip (ontology.rows.Batch), no BEGIN or
    COMMIT of their own."""
    tenant, thread = await chat_setup()
    statements, (run_id, question) = await sent_recording_statements(monkeypatch, tenant, thread)
    turns = ('INSERT INTO "chat_message"', 'UPDATE "chat_aithread"', 'INSERT INTO "ontology_event"')
    writes = [s for s in statements if any(part in s for part in turns)]
    assert len(writes) == 1, writes
    assert writes[0].startswith("WITH ")
    assert writes[0].count('INSERT INTO "chat_message"') == 2  # the question and the answer

    @database_sync_to_async
    def stored():
        with group_scope(tenant.group):
            answer = Message.objects.get(run_id=run_id)
            events = Event.objects.filter(type="message.sent", target_id=str(question.pk))
            return answer.parent_id, events.count()

    assert await stored() == (question.pk, 1)
    await frames_of_the_run_end(tenant, thread)


async def frames_of_the_run_end(tenant, thread):
    """Follow the thread's run to its end (the run streams on after its turn returned)."""
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="stream.resume", after_seq=0)
    await frames_until(tab, "run.completed")
    await tab.disconnect()


@pytest.mark.parametrize("age, busy", [(timedelta(0), True), (STALE_AFTER * 2, False)])
async def test_an_answer_streaming_with_a_live_heartbeat_keeps_the_thread_busy(sim, age, busy):
    """Redis has lost the run's lock (no key): the answer's row still holds the thread while
    its heartbeat lives, and lets go of it once the heartbeat is older than STALE_AFTER."""
    tenant, thread = await chat_setup()

    @database_sync_to_async
    def streaming_answer():
        with group_scope(tenant.group):
            Message.objects.create(
                group=tenant.group,
                thread=thread,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                run_id=uuid.uuid4(),
            )
            Message.objects.filter(thread=thread).update(updated_at=timezone.now() - age)

    await streaming_answer()
    assert cache.get(_lock_key(thread.pk)) is None
    if busy:
        with pytest.raises(Busy):
            await send_message(
                group=tenant.group, thread=thread, user=tenant.member, content="Again?"
            )
        assert cache.get(_lock_key(thread.pk)) is None  # the refusal let go of the lock
    else:
        run_id, _ = await send_message(
            group=tenant.group, thread=thread, user=tenant.member, content="Again?"
        )
        assert registry().runs[thread.pk].run_id == run_id
        await frames_of_the_run_end(tenant, thread)


async def test_a_turns_lock_rate_limit_and_agent_version_are_one_redis_call_on_its_start_trip(
    sim, monkeypatch
):
    """Once the process holds the group's plan and agents, a turn's start sends one script
    (the lock, both message counts, the configuration's version), from its database thread
    on the start's trip (chat.runs._starting), and none from the event loop: there its
    round trip waited behind every stream's deltas for several turns of the loop."""
    tenant, thread = await chat_setup()
    thread.title = "Named"  # no title is made after the first answer, beside the second turn
    await database_sync_to_async(thread.save)(update_fields=["title"])
    await send_message(group=tenant.group, thread=thread, user=tenant.member, content="Hi?")
    await frames_of_the_run_end(tenant, thread)  # the plan and the agents are read now
    sync_calls, loop_calls = [], []
    sync_execute, loop_execute = redis.Redis.execute_command, redis.asyncio.Redis.execute_command
    loop_queue = AutoPipeline.queue

    def on_thread(client, *args, **options):
        sync_calls.append((threading.get_ident(), *args))
        return sync_execute(client, *args, **options)

    async def on_loop(client, *args, **options):
        loop_calls.append(args)
        return await loop_execute(client, *args, **options)

    def on_loop_together(batched, *args, **options):  # sent with others (ontology.autopipeline)
        loop_calls.append(args)
        return loop_queue(batched, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", on_thread)
    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", on_loop)
    monkeypatch.setattr(AutoPipeline, "queue", on_loop_together)
    await send_message(group=tenant.group, thread=thread, user=tenant.member, content="Again?")
    monkeypatch.undo()

    def turns(calls):
        """Calls that touch the thread's lock, the message counters or the version."""
        names = (_lock_key(thread.pk), ":rl:messages:", "config-version:")
        return [c for c in calls if any(n in str(a) for a in c[1:] for n in names)]

    assert turns(loop_calls) == []
    ((on, *script),) = turns(sync_calls)
    assert on != threading.get_ident()  # a database thread's, not the event loop's
    assert script[0] in ("EVALSHA", "EVAL")
    keys = [str(k) for k in script[3 : 3 + int(script[2])]]
    assert keys[0].endswith(_lock_key(thread.pk))
    assert any(f"messages:user:{tenant.member.pk}" in k for k in keys)
    assert any(f"config-version:{tenant.group.pk}" in k for k in keys)
    run = registry().runs[thread.pk]
    assert run.setup.history[-1] == ("user", "Again?")
    await frames_of_the_run_end(tenant, thread)


async def test_the_answers_row_is_written_on_the_turns_start_trip(sim):
    """Before the first token (three seconds away here) the answer's row is there, streaming:
    written with the question, not on a trip of its own at the first text."""
    tenant, thread = await chat_setup(model="sim-gpt@text;words=20;ttft_ms=3000")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Slow one?")
    started = (await frames_until(tab, "run.started"))[-1]

    @database_sync_to_async
    def answer():
        with group_scope(tenant.group):
            return Message.objects.filter(pk=started["message_id"]).values_list(
                "status", "content", "parent__content"
            )[0]

    assert await answer() == (Message.Status.STREAMING, "", "Slow one?")
    await send(tab, type="run.stop", run_id=started["run_id"])
    await frames_until(tab, "run.stopped")
    await tab.disconnect()


async def test_turns_of_two_tenants_starting_together_share_a_trip_each_in_its_own_group(sim):
    """Starts in the same turn of the event loop make their trip to a database thread
    together (chat.runs._starting), admission included; each question and answer is saved
    in its own group. (Nothing suspends a start before its trip once the process listens
    for stops, so both reach it in one turn of the loop.)"""
    from chat.runs import _starting

    turns = [await chat_setup(), await chat_setup(slug="other")]
    await registry().ensure_running()
    _starting.largest = 0
    started = await asyncio.gather(
        *(
            send_message(group=tenant.group, thread=thread, user=tenant.member, content=f"Q{n}")
            for n, (tenant, thread) in enumerate(turns)
        )
    )
    assert _starting.largest == 2  # both starts on one trip
    for n, ((tenant, thread), (run_id, question)) in enumerate(zip(turns, started, strict=True)):
        await frames_of_the_run_end(tenant, thread)

        def saved(tenant=tenant, thread=thread):
            with group_scope(tenant.group):
                return list(
                    Message.objects.filter(thread=thread).values_list(
                        "group_id", "role", "content", "status", "run_id"
                    )
                )

        rows = await database_sync_to_async(saved)()
        assert [(g, r, s) for g, r, _, s, _ in rows] == [
            (tenant.group.pk, "user", "complete"),
            (tenant.group.pk, "assistant", "complete"),
        ]
        assert rows[0][2] == f"Q{n}" == question.content and rows[1][4] == run_id
