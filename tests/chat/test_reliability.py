"""What a user sees when things go wrong around a run: a finishing write the database refuses,
and a reconnect that lands on another daphne process. Synchronised on frames, never on sleeps."""

from contextlib import asynccontextmanager

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from billing.models import AICall
from chat.models import Message, RunEvent
from chat.runs import active_run_id
from ontology.models import Event
from ontology.scoping import group_scope
from tests.chat.test_consumers import chat_setup, connect, frames_until, send, seqs, text_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


@database_sync_to_async
def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


@asynccontextmanager
async def refused(table: str, *, when: str, operation: str = "UPDATE", errcode: str = "P0001"):
    """The database refuses writes to `table` that match `when` (a real trigger, not a mock)."""
    await execute(f"""
        CREATE FUNCTION parley_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {when} THEN
                RAISE EXCEPTION 'refused by the test' USING ERRCODE = '{errcode}';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER parley_test_refuse BEFORE {operation} ON {table}
            FOR EACH ROW EXECUTE FUNCTION parley_test_refuse();
    """)
    try:
        yield
    finally:
        await execute(
            f"DROP TRIGGER IF EXISTS parley_test_refuse ON {table};"
            " DROP FUNCTION IF EXISTS parley_test_refuse();"
        )


@database_sync_to_async
def stored(tenant, message_id):
    with group_scope(tenant.group):
        message = Message.objects.get(pk=message_id)
        calls = list(AICall.objects.filter(run_id=message.run_id).values_list("status", flat=True))
        return message, calls


async def a_second_send_completes(tab, thread) -> None:
    assert await database_sync_to_async(active_run_id)(thread.pk) is None
    await send(tab, type="message.send", content="Again")
    frames = await frames_until(tab, "run.completed", "error")
    assert frames[-1]["type"] == "run.completed"


ANSWER_EVENTS = "NEW.type IN ('ai_response_completed', 'ai_response_failed')"


@pytest.mark.parametrize(
    ("table", "when", "operation"),
    [
        ("chat_message", "NEW.status = 'complete'", "UPDATE"),  # the answer's row
        # the answer's audit event, so the failed answer cannot be saved through it either
        (Event._meta.db_table, ANSWER_EVENTS, "INSERT"),
    ],
    ids=["answer-row", "answer-event"],
)
async def test_an_answer_that_cannot_be_saved_ends_as_failed_at_once(sim, table, when, operation):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    other, _ = await connect(thread.pk, tenant.member)
    async with refused(table, when=when, operation=operation):
        await send(tab, type="message.send", content="Hello?")
        frames = await frames_until(tab, "run.completed", "error")
        assert (await frames_until(other, "run.completed", "error"))[-1] == frames[-1]
        ending = frames[-1]
        assert (ending["type"], ending["code"]) == ("error", "internal")
        assert ending["run_id"] == frames[1]["run_id"] and ending["seq"] == seqs(frames)[-1]

        message, calls = await stored(tenant, ending["message_id"])
        assert (message.status, message.error_code) == (Message.Status.ERROR, "internal")
        assert message.content == text_of(frames) != ""
        assert calls == [AICall.Status.OK]  # the provider call is metered all the same
    await a_second_send_completes(tab, thread)
    for client in (tab, other):
        await client.disconnect()


async def test_a_final_event_the_log_cannot_take_still_ends_the_run_for_every_tab(sim):
    """The database drops the connection on the run's last log write (a connection-class
    error: the log keeps the rows and writes them again later)."""
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    other, _ = await connect(thread.pk, tenant.member)
    async with refused(
        RunEvent._meta.db_table,
        when="NEW.type = 'run.completed'",
        operation="INSERT",
        errcode="08006",
    ):
        await send(tab, type="message.send", content="Hello?")
        frames = await frames_until(tab, "run.completed", "error")
        assert frames[-1]["type"] == "run.completed"
        assert (await frames_until(other, "run.completed", "error"))[-1] == frames[-1]
        message, _ = await stored(tenant, frames[-1]["message_id"])
        assert message.status == Message.Status.COMPLETE
    await a_second_send_completes(tab, thread)

    @database_sync_to_async
    def logged():
        with group_scope(tenant.group):
            return list(
                RunEvent.objects.filter(run_id=frames[1]["run_id"])
                .order_by("seq")
                .values_list("seq", flat=True)
            )

    assert await logged() == seqs(frames)  # written once the database took it again
    for client in (tab, other):
        await client.disconnect()
