"""What a user sees when things go wrong around a run: a finishing write the database refuses,
and a reconnect that lands on another daphne process. Synchronised on frames, never on sleeps."""

import asyncio
import json
from contextlib import asynccontextmanager

import aiohttp
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from billing.models import AICall
from chat import services as chat_services
from chat.models import Message, RunEvent
from chat.runs import active_run_id
from ontology import services
from ontology.models import Event, Thing
from ontology.scoping import group_scope
from tests.chat.test_consumers import (
    TIMEOUT,
    chat_setup,
    connect,
    frames_until,
    send,
    seqs,
    session_cookie,
    text_of,
)
from tests.conftest import make_tenant, set_plan
from tests.servers import daphne_servers

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


# --- a reconnect that lands on another process ------------------------------------------------

RESUME_MODEL = "sim-gpt@slow;ttft_ms=0;tps=50;words=60"


@pytest.fixture(scope="module")
def two_processes(django_db_setup, simulator):
    """Two daphne processes on one database and Redis; each token is (about) its own delta,
    so a disconnect can be placed almost anywhere in a run."""
    with daphne_servers(
        2, simulator_url=simulator.url, env={"PARLEY_STREAM_FRAME_MS": "0"}
    ) as urls:
        yield urls


@database_sync_to_async
def threads_for_one_member(count: int):
    """Titled threads: no title call runs on after an answer, into the next test's flush."""
    set_plan("free", message_rate_user="1000/d", message_rate_group="1000/d")
    tenant = make_tenant("acme")
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Chat agent",
        actor=tenant.owner,
        properties={"provider": "simulator", "model": RESUME_MODEL},
    )
    with group_scope(tenant.group):
        threads = [
            chat_services.thread_create(
                group=tenant.group, agent=agent, user=tenant.member, title="A story"
            )
            for _ in range(count)
        ]
    return tenant, threads


class Socket:
    """An outside protocol client's socket, opened on one daphne process."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket

    @classmethod
    async def open(cls, session, url: str, thread_id: int, cookie: str) -> "Socket":
        websocket = await session.ws_connect(
            url.replace("http://", "ws://") + f"/ws/threads/{thread_id}/",
            origin=url,
            headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
        )
        return cls(websocket)

    async def send(self, **frame) -> None:
        await self.websocket.send_str(json.dumps(frame))

    async def run_frames(self, until) -> list[dict]:
        """The run's frames (those with a seq) until `until(frames)` holds, or as far as they
        came when nothing more arrives within TIMEOUT."""
        frames: list[dict] = []
        while not frames or not until(frames):
            try:
                message = await asyncio.wait_for(self.websocket.receive(), TIMEOUT)
            except TimeoutError:
                return frames
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = json.loads(message.data)
            assert "seq" in frame or frame["type"] != "error", frame
            if "seq" in frame:
                frames.append(frame)
        return frames

    async def close(self) -> None:
        await self.websocket.close()


def ended(frames) -> bool:
    return frames[-1]["type"] in ("run.completed", "run.stopped", "error")


async def test_a_reconnect_to_another_process_resumes_exactly_at_any_point_of_a_run(
    two_processes,
):
    """A client sends on process A, drops its socket once it has a given share of the answer,
    reconnects to process B and resumes after the last seq it had: it must get every later
    event once, in order, through run.completed, wherever it dropped, the run's last 250 ms
    (about the last 60 characters, at 50 tokens a second) and its very last delta included."""
    here, there = two_processes
    tenant, threads = await threads_for_one_member(16)
    cookie = await session_cookie(tenant.member)
    async with aiohttp.ClientSession() as session:
        reference = await Socket.open(session, here, threads[0].pk, cookie)
        await reference.send(type="message.send", content="Tell me a story")
        whole = await reference.run_frames(ended)
        await reference.close()
        assert whole[-1]["type"] == "run.completed"
        answer = text_of(whole)  # the same question on each thread: the same answer
        size = len(answer)
        points = sorted(
            {1, size // 4, size // 2, size * 3 // 4, size * 9 // 10}
            | {size - left for left in (60, 45, 30, 20, 12, 6, 0)}
        )

        async def reconnect_after(thread, point: int) -> tuple[int, list[dict], list[dict]]:
            first = await Socket.open(session, here, thread.pk, cookie)
            await first.send(type="message.send", content="Tell me a story")
            before = await first.run_frames(lambda frames: len(text_of(frames)) >= point)
            await first.close()
            second = await Socket.open(session, there, thread.pk, cookie)
            await second.send(type="stream.resume", after_seq=before[-1]["seq"])
            after = await second.run_frames(ended)
            await second.close()
            return point, before, after

        outcomes = await asyncio.gather(
            *(reconnect_after(thread, p) for thread, p in zip(threads[1:], points, strict=False))
        )
    for point, before, _ in outcomes:
        assert before[-1]["type"] == "delta", f"dropped after {point} characters"
    wrong = {
        point: (seqs(before)[-1], seqs(after)[:1], after[-1:], len(after))
        for point, before, after in outcomes
        if not after
        or after[-1]["type"] != "run.completed"
        or seqs(before) + seqs(after) != list(range(1, after[-1]["seq"] + 1))
        or text_of(before) + text_of(after) != answer
    }
    # dropped after n characters: (last seq it had, first seq resumed, last frame, how many)
    assert not wrong, f"{size} characters, {len(whole)} events in the reference run: {wrong}"


async def test_a_frame_over_a_megabyte_closes_the_socket_with_1009_and_a_reason(two_processes):
    tenant, (thread,) = await threads_for_one_member(1)
    cookie = await session_cookie(tenant.member)
    async with aiohttp.ClientSession() as session:
        tab = await Socket.open(session, two_processes[0], thread.pk, cookie)
        # Over daphne's 1 MB, yet small enough to be written whole before the server has
        # read past the limit and closed (a 20 MB write could be cut off by the close).
        await tab.send(type="message.send", content="x" * 1_500_000)
        closing = await asyncio.wait_for(tab.websocket.receive(), TIMEOUT)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert closing.data == 1009 and "exceeds payload limit" in closing.extra
        await tab.close()

    @database_sync_to_async
    def questions():
        with group_scope(tenant.group):
            return Message.objects.count()

    assert await questions() == 0
