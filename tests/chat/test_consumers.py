"""The chat WebSocket through the real ASGI stack: session cookie, Origin check, channel layer
on the real Redis, runs against the simulator. Synchronised on frames, never on sleeps."""

import asyncio
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from billing.models import AICall
from billing.ratelimits import message_rate_limited
from chat import services as chat_services
from chat.fanout import thread_group
from chat.models import Message, RunEvent
from chat.runs import (
    RunRegistry,
    _lock_holder,
    active_run_id,
    mark_interrupted_runs,
    registry,
)
from chat.titles import propose_title
from ontology import services
from ontology.models import Event, Thing
from ontology.scoping import group_scope
from tests.conftest import make_tenant, make_user, set_plan

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]
TIMEOUT = 10


def application():
    from config.asgi import application

    return application


@database_sync_to_async
def chat_setup(model="sim-gpt@text;words=20", slug="acme", **properties):
    tenant = make_tenant(slug)
    agent = services.thing_create(
        group=tenant.group,
        type=Thing.Type.AGENT,
        name="Chat agent",
        actor=tenant.owner,
        properties={"provider": "simulator", "model": model, **properties},
    )
    with group_scope(tenant.group):
        thread = chat_services.thread_create(group=tenant.group, agent=agent, user=tenant.member)
    return tenant, thread


@database_sync_to_async
def session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def connect(thread_id, user=None, origin="http://testserver", host="testserver"):
    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    if user is not None:
        cookie = await session_cookie(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application(), f"/ws/threads/{thread_id}/", headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


NOTICES = {"run.active", "stream.resumed"}  # where a socket stands; their own tests check them


async def frames_until(communicator, *types, limit=2000):
    """Receive frames until one of `types` arrives; return them all (but the notices of where
    the socket stands, unless asked for)."""
    received = []
    for _ in range(limit):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] in NOTICES and frame["type"] not in types:
            continue
        received.append(frame)
        if frame["type"] in types:
            return received
    raise AssertionError(f"no {types} in {limit} frames")


def text_of(frames):
    return "".join(f["text"] for f in frames if f["type"] == "delta")


def seqs(frames):
    return [f["seq"] for f in frames if "seq" in f]


async def send(communicator, **frame):
    await communicator.send_to(text_data=json.dumps(frame))


async def test_a_message_streams_an_answer_to_every_open_tab(sim):
    tenant, thread = await chat_setup()
    first, _ = await connect(thread.pk, tenant.member)
    second, _ = await connect(thread.pk, tenant.member)
    await send(first, type="message.send", content="Hello?", client_id="c1")

    for tab in (first, second):
        frames = await frames_until(tab, "run.completed")
        created = frames[0]
        assert created["type"] == "message.created"
        assert (created["message"]["content"], created["message"]["client_id"]) == ("Hello?", "c1")
        assert frames[1]["type"] == "run.started"
        assert seqs(frames) == list(range(1, len(seqs(frames)) + 1))
        assert text_of(frames)
    message_id = frames[1]["message_id"]

    @database_sync_to_async
    def stored():
        with group_scope(tenant.group):
            return Message.objects.get(pk=message_id), RunEvent.objects.count()

    message, logged = await stored()
    assert (message.status, message.content) == (Message.Status.COMPLETE, text_of(frames))
    assert logged == len(seqs(frames))  # the durable log holds every event
    for tab in (first, second):
        await tab.disconnect()


async def test_a_socket_is_open_only_once_it_listens_so_a_send_at_once_elsewhere_reaches_it(sim):
    """The handshake is answered once the socket is in its thread's fanout: a tab that has
    just opened hears a question sent from another tab of its process at once, and its run
    from `seq` 1, without a resume. Answered first, it could miss both (told only
    `run.active`)."""
    from chat.fanout import local_fanout

    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    opened, _ = await connect(thread.pk, tenant.member)
    assert len(local_fanout()._listeners[thread.pk]) == 2  # both listen as they are open
    await send(tab, type="message.send", content="Hello?")
    frames = await frames_until(opened, "run.completed", "run.active")
    assert [f["type"] for f in frames[:2]] == ["message.created", "run.started"]
    assert frames[-1]["type"] == "run.completed"
    assert seqs(frames) == list(range(1, len(seqs(frames)) + 1))
    await frames_until(tab, "run.completed")
    for socket in (tab, opened):
        await socket.disconnect()


async def test_tool_activity_and_sources_reach_the_client(sim, celery_worker):
    tenant, thread = await chat_setup(model="sim-gpt", tools=["searchKnowledge"])

    @database_sync_to_async
    def add_knowledge():
        from tests.agents.conftest import ingest_text

        ingest_text(tenant.group, "Refund policy", "Refunds within 30 days.")

    await add_knowledge()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How long for refunds?")
    frames = await frames_until(tab, "run.completed")
    types = [f["type"] for f in frames]
    assert types.index("tool.started") < types.index("sources") < types.index("tool.finished")
    (sources,) = [f for f in frames if f["type"] == "sources"]
    assert sources["items"][0]["title"] == "Refund policy"
    assert "[1]" in text_of(frames)
    await tab.disconnect()


async def test_stop_ends_the_run_and_keeps_the_partial_answer(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=400")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Tell me a long story")
    frames = await frames_until(tab, "delta")
    await send(tab, type="run.stop")
    frames += await frames_until(tab, "run.stopped")

    @database_sync_to_async
    def stored():
        with group_scope(tenant.group):
            return Message.objects.get(pk=frames[1]["message_id"])

    message = await stored()
    assert (message.status, message.content) == (Message.Status.STOPPED, text_of(frames))
    assert 0 < len(message.content.split()) < 400
    await tab.disconnect()


async def test_a_stop_from_another_process_reaches_the_run(sim):
    """The run streams here; the stop is asked of a registry holding no run (another
    daphne's): it finds the holder through the thread's lock and tells it directly."""
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=400")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Tell me a long story")
    frames = await frames_until(tab, "delta")
    elsewhere = RunRegistry()
    assert thread.pk not in elsewhere.runs
    await elsewhere.request_stop(thread.pk)
    frames += await frames_until(tab, "run.stopped")
    assert frames[-1]["run_id"] == frames[1]["run_id"]
    assert await sync_to_async(active_run_id)(thread.pk) is None
    await tab.disconnect()


async def test_a_stop_naming_another_run_leaves_the_threads_run_alone(sim):
    """A stop that arrives late, naming a run of the thread that is already over, must not stop
    the thread's next run. Behind it on the same control channel comes a stop for a second
    thread's run: once that run has stopped, the late stop has been read, and ignored."""
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=100;words=200")
    other_tenant, other = await chat_setup(
        model="sim-gpt@slow;ttft_ms=0;tps=30;words=400", slug="globex"
    )
    tab, _ = await connect(thread.pk, tenant.member)
    other_tab, _ = await connect(other.pk, other_tenant.member)
    await send(tab, type="message.send", content="Go")
    run_id = (await frames_until(tab, "run.started"))[-1]["run_id"]
    await send(other_tab, type="message.send", content="Go")
    await frames_until(other_tab, "delta")

    _, control_channel = await sync_to_async(_lock_holder)(thread.pk)
    late = {"type": "run.stop", "thread_id": thread.pk, "run_id": str(uuid.uuid4())}
    await get_channel_layer().send(control_channel, late)
    await RunRegistry().request_stop(other.pk)  # to the same channel: read after the late one
    await frames_until(other_tab, "run.stopped")

    assert str(registry().runs[thread.pk].run_id) == run_id  # still streaming when it was read
    frames = await frames_until(tab, "run.completed", "run.stopped")
    assert frames[-1]["type"] == "run.completed"
    await tab.disconnect()
    await other_tab.disconnect()


async def test_a_second_message_while_streaming_is_busy(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=400")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="First")
    await frames_until(tab, "delta")
    await send(tab, type="message.send", content="Second")
    frames = await frames_until(tab, "error")
    assert frames[-1]["code"] == "busy"
    await send(tab, type="run.stop")
    await frames_until(tab, "run.stopped")

    @database_sync_to_async
    def questions():
        with group_scope(tenant.group):
            return list(Message.objects.filter(role="user").values_list("content", flat=True))

    assert await questions() == ["First"]
    await tab.disconnect()


@pytest.mark.parametrize("ending", ["run.completed", "run.stopped"])
async def test_the_thread_is_free_the_moment_its_run_is_announced_over(sim, ending):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=100;words=30")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="First")
    if ending == "run.stopped":
        await frames_until(tab, "delta")
        await send(tab, type="run.stop")
    await frames_until(tab, ending)
    # A blocking read: nothing else on this loop runs before it, so the run must have let
    # go of the thread before the tab heard it ended (a browser sends again at once).
    assert active_run_id(thread.pk) is None
    await send(tab, type="message.send", content="Second")
    frames = await frames_until(tab, "run.completed", "error")
    assert frames[-1]["type"] == "run.completed"
    await tab.disconnect()


async def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=60;words=120")
    watcher, _ = await connect(thread.pk, tenant.owner)
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Go")
    seen = await frames_until(tab, "delta")
    seen += [await tab.receive_json_from(timeout=TIMEOUT) for _ in range(5)]
    await tab.disconnect()  # closing the tab does not stop the run

    watched = await frames_until(watcher, "delta")
    while seqs(watched)[-1] < seqs(seen)[-1] + 20:  # the run goes on meanwhile
        watched.append(await watcher.receive_json_from(timeout=TIMEOUT))

    again, _ = await connect(thread.pk, tenant.member)
    await send(again, type="stream.resume", after_seq=seqs(seen)[-1])
    resumed = await frames_until(again, "run.completed")
    watched += await frames_until(watcher, "run.completed")

    assert seqs(seen) + seqs(resumed) == list(range(1, seqs(resumed)[-1] + 1))
    assert seqs(watched) == seqs(seen) + seqs(resumed)
    assert text_of(seen) + text_of(resumed) == text_of(watched)
    for tab_ in (watcher, again):
        await tab_.disconnect()


async def test_a_tab_opened_mid_run_resumes_from_the_start(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=60;words=60")
    first, _ = await connect(thread.pk, tenant.member)
    await send(first, type="message.send", content="Go")
    live = await frames_until(first, "delta")
    late, _ = await connect(thread.pk, tenant.member)
    await send(late, type="stream.resume", after_seq=0)
    everything = await frames_until(late, "run.completed")
    live += await frames_until(first, "run.completed")
    assert seqs(everything) == list(range(1, seqs(everything)[-1] + 1))
    assert text_of(everything) == text_of(live)


async def test_a_tab_in_another_process_hears_the_question_and_the_whole_answer(sim):
    tenant, thread = await chat_setup()
    elsewhere = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)  # another daphne's layer
    channel = await elsewhere.new_channel()
    await elsewhere.group_add(thread_group(thread.pk), channel)
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hello?")
    frames = await frames_until(tab, "run.completed")

    heard: list[dict] = []
    while not any(event["type"] == "run.completed" for event in heard):
        message = await asyncio.wait_for(elsewhere.receive(channel), TIMEOUT)
        assert message["type"] == "run.events" and message["origin"] != elsewhere.client_prefix
        heard += message["events"]
    assert [e["message"]["content"] for e in heard if e["type"] == "message.created"] == ["Hello?"]
    assert [e for e in heard if "seq" in e] == [f for f in frames if "seq" in f]
    await elsewhere.group_discard(thread_group(thread.pk), channel)
    await elsewhere.close_pools()
    await tab.disconnect()


async def test_regenerate_answers_again_keeping_the_last_answer_as_an_alternative(sim):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hi")
    first = await frames_until(tab, "run.completed")
    await frames_until(tab, "thread.updated")  # the first answer names the thread
    other, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.regenerate", message_id=first[1]["message_id"])
    second = [f for f in await frames_until(tab, "run.completed") if "seq" in f]
    assert second[0]["type"] == "run.started"
    replaced = (await frames_until(other, "message.replaced"))[-1]
    assert replaced["message_id"] == first[1]["message_id"]  # every tab drops the old answer
    await other.disconnect()
    assert second[0]["message_id"] != first[1]["message_id"]

    @database_sync_to_async
    def answers():
        with group_scope(tenant.group):
            return {
                str(pk): (status, parent)
                for pk, status, parent in Message.objects.filter(role="assistant").values_list(
                    "pk", "status", "parent_id"
                )
            }

    stored = await answers()
    old, new = stored[first[1]["message_id"]], stored[second[0]["message_id"]]
    assert old[0] == new[0] == Message.Status.COMPLETE  # both kept: siblings (chat.tree)
    assert old[1] == new[1] is not None  # answering the same question
    await send(tab, type="message.regenerate", message_id=first[1]["message_id"])
    assert (await frames_until(tab, "error"))[-1]["code"] == "invalid"
    await tab.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ('["a list"]', "bad_frame"),
        ('{"type": "message.dance"}', "unknown_type"),
        ('{"type": "message.send"}', "missing_field"),
        ('{"type": "message.send", "content": "   "}', "empty"),
        ('{"type": "message.send", "content": 42}', "bad_frame"),
        ('{"type": "stream.resume", "after_seq": -1}', "bad_frame"),
        ('{"type": "message.regenerate", "message_id": "nope"}', "bad_frame"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_up(sim, raw, code):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await tab.send_to(text_data=raw)
    frame = await tab.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", code)
    assert frame["message"]
    await send(tab, type="message.send", content="Still there?")
    assert (await frames_until(tab, "run.completed"))[-1]["type"] == "run.completed"
    await tab.disconnect()


async def test_an_oversize_message_is_refused_and_nothing_is_saved(sim, settings):
    settings.PARLEY_MAX_MESSAGE_CHARS = 100
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="x" * 101)
    frame = await tab.receive_json_from(timeout=TIMEOUT)
    assert frame["code"] == "too_long" and "100" in frame["message"]

    @database_sync_to_async
    def count():
        with group_scope(tenant.group):
            return Message.objects.count()

    assert await count() == 0
    await tab.disconnect()


async def test_sending_too_fast_is_rate_limited(sim):
    # Day-long windows: a fixed window must not roll over in the middle of the test.
    await database_sync_to_async(set_plan)(
        "free", message_rate_user="2/d", message_rate_group="100/d"
    )
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    for _ in range(2):
        await send(tab, type="message.send", content="Hi")
        await frames_until(tab, "run.completed")
    await send(tab, type="message.send", content="Hi again")
    frames = await frames_until(tab, "error", "run.started")
    # the first answer's title, made after its run ended, may reach the tab only now
    assert {f["type"] for f in frames[:-1]} <= {"thread.updated"}
    frame = frames[-1]
    assert frame["code"] == "rate_limited" and frame["retry_after"] >= 1
    await tab.disconnect()


def test_parallel_sends_admit_exactly_the_limit(tenant_a, clear_cache):
    set_plan("free", message_rate_user="10/d", message_rate_group="1000/d")

    def send(_):
        try:
            return message_rate_limited(user=tenant_a.member, group=tenant_a.group)
        finally:
            connection.close()  # the plan is read per message, on this thread's own connection

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(send, range(100)))
    assert sum(r is None for r in results) == 10


async def test_a_socket_opens_and_closes_while_the_shared_sync_thread_is_busy(sim):
    # Sessions and users load on the request pool: a long thread-sensitive call elsewhere in
    # the process (asgiref's default, one thread for everybody) holds up no socket opening,
    # and no closing either (channels' own close would wait for that thread).
    tenant, thread = await chat_setup()
    cookie = await session_cookie(tenant.member)
    release = threading.Event()
    busy = asyncio.create_task(sync_to_async(release.wait, thread_sensitive=True)())
    try:
        tab = WebsocketCommunicator(
            application(),
            f"/ws/threads/{thread.pk}/",
            [
                (b"origin", b"http://testserver"),
                (b"host", b"testserver"),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        )
        connected, _ = await tab.connect(timeout=TIMEOUT)
        assert connected
        await send(tab, type="stream.resume", after_seq=0)  # the socket is signed in and open
        assert await tab.receive_json_from(timeout=TIMEOUT) == {
            "type": "stream.resumed",  # no run_id: the thread has had no run
            "last_seq": 0,
            "streaming": False,
        }
        await tab.disconnect()  # waits for the consumer to end (TimeoutError if it hangs)
        assert tab.future.done() and not tab.future.cancelled()
    finally:
        release.set()
        await busy


async def test_another_tenants_thread_is_refused(sim):
    tenant, thread = await chat_setup()
    intruder = await database_sync_to_async(make_tenant)("rival")
    tab, connected = await connect(thread.pk, intruder.owner)
    assert connected
    assert (await tab.receive_output(timeout=TIMEOUT)) == {"type": "websocket.close", "code": 4404}
    missing, _ = await connect(999_999, tenant.member)
    assert (await missing.receive_output(timeout=TIMEOUT))["code"] == 4404


async def test_anonymous_is_refused(sim):
    _, thread = await chat_setup()
    tab, _ = await connect(thread.pk, None)
    assert (await tab.receive_output(timeout=TIMEOUT))["code"] == 4401
    await tab.disconnect()


async def test_a_foreign_origin_is_refused(sim):
    tenant, thread = await chat_setup()
    tab, connected = await connect(thread.pk, tenant.member, origin="https://evil.example")
    assert connected is False
    await tab.disconnect()  # the refused socket's application ends with the client


def dead_run(tenant_a) -> Message:
    """An answer whose process died five minutes ago, three deltas into it."""
    with group_scope(tenant_a.group):
        thread = chat_services.thread_create(
            group=tenant_a.group, agent=tenant_a.agent, user=tenant_a.member
        )
        run_id = uuid.uuid4()
        message = chat_services.assistant_message_start(
            thread=thread, run_id=run_id, message_id=uuid.uuid4()
        )
        Message.objects.filter(pk=message.pk).update(
            updated_at=timezone.now() - timedelta(minutes=5)
        )
        for seq, text in enumerate(["Half ", "an ", "answer"], start=2):
            RunEvent.objects.create(
                group=tenant_a.group,
                thread=thread,
                run_id=run_id,
                seq=seq,
                type="delta",
                payload={"type": "delta", "run_id": str(run_id), "seq": seq, "text": text},
            )
    return message


def test_runs_that_died_are_marked_interrupted_with_their_text(tenant_a):
    message = dead_run(tenant_a)
    ((thread_id, final),) = mark_interrupted_runs()
    with group_scope(tenant_a.group):
        message.refresh_from_db()
        assert Event.objects.filter(type="ai_response_interrupted").count() == 1
        logged = RunEvent.objects.filter(run_id=message.run_id).order_by("seq").last()
    assert (message.status, message.content) == (Message.Status.INTERRUPTED, "Half an answer")
    assert message.error_code == "interrupted"
    assert thread_id == message.thread_id
    assert (final["type"], final["code"], final["seq"]) == ("error", "interrupted", 5)
    assert final["message_id"] == str(message.pk)
    assert logged.payload == final  # a tab that resumes later hears the end too
    assert mark_interrupted_runs() == []


async def test_a_restarted_process_sweeps_dead_runs_on_its_first_request(tenant_a):
    message = await database_sync_to_async(dead_run)(tenant_a)
    health = HttpCommunicator(application(), "GET", "/healthz", headers=[(b"host", b"testserver")])
    response = await health.get_response()
    assert response["status"] == 200
    await asyncio.wait_for(registry().swept.wait(), TIMEOUT)
    await database_sync_to_async(message.refresh_from_db)()
    assert (message.status, message.content) == (Message.Status.INTERRUPTED, "Half an answer")


@database_sync_to_async
def title_calls(tenant):
    with group_scope(tenant.group):
        return list(AICall.objects.filter(purpose=AICall.Purpose.TITLE).order_by("attempt"))


async def test_the_first_answer_titles_the_thread_for_every_tab_metered(sim):
    tenant, thread = await chat_setup(model="sim-gpt")  # the offline model names it
    tab, _ = await connect(thread.pk, tenant.member)
    other, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How do refunds work for damaged goods?")
    await frames_until(tab, "run.completed")
    for client in (tab, other):
        updated = (await frames_until(client, "thread.updated"))[-1]
        assert updated["thread"] == {"id": thread.pk, "title": "How do refunds work for damaged"}
    await database_sync_to_async(thread.refresh_from_db)()
    assert thread.title == "How do refunds work for damaged"
    [call] = await title_calls(tenant)
    reported = sim.usage_log[-1]
    assert (call.status, call.model, call.usage_exact) == ("ok", "sim-gpt", True)
    assert (call.input_tokens, call.output_tokens) == (
        reported.input_tokens,
        reported.output_tokens,
    )
    assert call.cost > 0 and call.thread_id == thread.pk

    requests = len(sim.request_log)
    assert await propose_title(group=tenant.group, thread=thread, user=tenant.member) == ""
    assert len(sim.request_log) == requests  # a titled thread is never titled again
    await tab.disconnect()
    await other.disconnect()


async def test_a_failed_title_call_is_metered_and_falls_back_to_the_question(sim, settings):
    settings.PARLEY_TITLE_MODEL = "simulator/sim-gpt@server_error"
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="  Where is   the   travel policy kept?  ")
    await frames_until(tab, "run.completed")
    updated = (await frames_until(tab, "thread.updated"))[-1]
    assert updated["thread"]["title"] == "Where is the travel policy kept?"
    calls = await title_calls(tenant)  # tried twice: a provider error may pass
    assert [(c.attempt, c.status, c.error_code, c.cost) for c in calls] == [
        (0, "failed", "provider_unavailable", 0),
        (1, "failed", "provider_unavailable", 0),
    ]
    await tab.disconnect()


async def test_a_title_call_that_fails_once_is_tried_again(sim, settings):
    settings.PARLEY_TITLE_MODEL = "simulator/sim-gpt@server_error_once"
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="How do refunds work for damaged goods?")
    await frames_until(tab, "run.completed")
    updated = (await frames_until(tab, "thread.updated"))[-1]
    assert updated["thread"]["title"] == "How do refunds work for damaged"  # the model's
    calls = await title_calls(tenant)
    assert [(c.attempt, c.status) for c in calls] == [(0, "failed"), (1, "ok")]
    assert calls[1].cost > 0
    await tab.disconnect()


def test_the_channel_layer_blocks_for_less_than_a_socket_read_may_take():
    """An idle socket's consumer must not see a read timeout (channels_redis#422)."""
    from redis.asyncio.connection import DEFAULT_SOCKET_TIMEOUT

    from chat.layers import RedisChannelLayer

    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    timeout = layer.hosts[0].get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    assert timeout is None or layer.brpop_timeout < timeout


async def test_more_concurrent_group_messages_than_pooled_connections_all_arrive(settings):
    """A burst beyond the pool's connections waits for a free one instead of failing."""
    settings.PARLEY_CHANNEL_LAYER_CONNECTIONS = 3
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("pool-burst", channel)
    try:
        await asyncio.gather(
            *(layer.group_send("pool-burst", {"type": "n", "n": n}) for n in range(40))
        )
        received = {(await layer.receive(channel))["n"] for _ in range(40)}
    finally:
        await layer.group_discard("pool-burst", channel)
    assert received == set(range(40))
    assert layer.connection(0).connection_pool.max_connections == 3


async def test_a_channel_joins_its_group_in_one_round_trip_to_redis(monkeypatch):
    """A socket opening joins its thread's group: the channel in the group's set and the
    set's expiry pushed back, sent together (chat.layers), not as two round trips."""
    from redis.asyncio.connection import Connection

    layer = get_channel_layer()
    channel = await layer.new_channel()
    sends, send = [], Connection.send_packed_command

    async def counted(connection, command, *args, **kwargs):
        packed = command if isinstance(command, bytes) else b"".join(command)
        if b"ZADD" in packed or b"EXPIRE" in packed:  # not a new connection's HELLO
            sends.append(packed)
        return await send(connection, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    await layer.group_add("one-trip", channel)
    monkeypatch.undo()
    try:
        redis = layer.connection(layer.consistent_hash("one-trip"))
        key = layer._group_key("one-trip")
        assert await redis.zscore(key, channel) is not None
        assert 0 < await redis.ttl(key) <= layer.group_expiry
        assert len(sends) == 1 and b"ZADD" in sends[0] and b"EXPIRE" in sends[0]
        assert "one-trip" in layer.memberships and channel in layer.memberships["one-trip"]
    finally:
        await layer.group_discard("one-trip", channel)


async def test_a_colleagues_thread_is_closed_like_a_missing_one(sim):
    tenant, thread = await chat_setup()  # the member's thread
    colleague = await database_sync_to_async(make_user)("colleague@acme.example")
    await database_sync_to_async(services.membership_create)(
        group=tenant.group, user=colleague, role="member", actor=tenant.owner
    )
    for thread_id in (thread.pk, 999_999):
        tab, connected = await connect(thread_id, colleague)
        assert connected
        assert await tab.receive_output(timeout=TIMEOUT) == {
            "type": "websocket.close",
            "code": 4404,
        }


async def test_sockets_opening_together_are_each_answered_for_their_own_user(sim):
    """Sockets opening in the same turn read who and where on one trip to a database thread
    (chat.consumers._opening); each is answered for its own session: the author and the
    group's owner in, a colleague and another tenant's owner closed as not found, nobody
    closed as not signed in."""
    from chat.consumers import _opening

    tenant, thread = await chat_setup()
    colleague = await database_sync_to_async(make_user)("colleague@acme.example")
    await database_sync_to_async(services.membership_create)(
        group=tenant.group, user=colleague, role="member", actor=tenant.owner
    )
    stranger = (await database_sync_to_async(make_tenant)("other")).owner
    readers = [tenant.member, colleague, tenant.owner, stranger, None, tenant.member]
    tabs = []
    for user in readers:  # every session made first, so that the opens go together
        headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
        if user is not None:
            cookie = await session_cookie(user)
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        tabs.append(WebsocketCommunicator(application(), f"/ws/threads/{thread.pk}/", headers))
    _opening.largest = 0
    opened = await asyncio.gather(*(tab.connect(timeout=TIMEOUT) for tab in tabs))
    assert all(connected for connected, _ in opened)
    assert _opening.largest > 1  # some of them shared a trip
    for tab, code in zip(tabs, (None, 4404, None, 4404, 4401, None), strict=True):
        if code is not None:
            closed = await tab.receive_output(timeout=TIMEOUT)
            assert closed == {"type": "websocket.close", "code": code}
            continue
        await tab.send_to(text_data='{"type": "message.dance"}')  # open, and answering
        frame = await tab.receive_json_from(timeout=TIMEOUT)
        assert (frame["type"], frame["code"]) == ("error", "unknown_type")
        await tab.disconnect()


async def test_an_owner_reads_a_members_thread_live_but_cannot_write_in_it(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=60;words=200")
    author, _ = await connect(thread.pk, tenant.member)
    reader, connected = await connect(thread.pk, tenant.owner)
    assert connected
    await send(author, type="message.send", content="Hello?")
    started = (await frames_until(reader, "run.started"))[-1]
    await send(reader, type="run.stop")
    await send(reader, type="message.send", content="Owner here")
    await send(reader, type="message.regenerate", message_id=started["message_id"])
    refusals = [f for f in await frames_until(reader, "run.completed") if f["type"] == "error"]
    assert [f["code"] for f in refusals] == ["read_only"] * 3
    assert "only they can write" in refusals[0]["message"]
    # The stop was refused: the author's answer ran to its end.
    assert (await frames_until(author, "run.completed", "run.stopped"))[-1]["type"] == (
        "run.completed"
    )

    @database_sync_to_async
    def questions():
        with group_scope(tenant.group):
            return list(Message.objects.filter(role="user").values_list("content", flat=True))

    assert await questions() == ["Hello?"]
    await author.disconnect()
    await reader.disconnect()


async def test_regenerate_counts_against_the_message_limit(sim):
    await database_sync_to_async(set_plan)(
        "free", message_rate_user="2/d", message_rate_group="100/d"
    )
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hi")
    first = await frames_until(tab, "run.completed")
    await send(tab, type="message.regenerate", message_id=first[1]["message_id"])
    second = [f for f in await frames_until(tab, "run.completed") if "seq" in f]
    await send(tab, type="message.regenerate", message_id=second[0]["message_id"])
    refused = (await frames_until(tab, "error"))[-1]
    assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1

    @database_sync_to_async
    def answers():
        with group_scope(tenant.group):
            return Message.objects.filter(role="assistant").count()

    assert await answers() == 2  # the refused regenerate set nothing aside
    await tab.disconnect()


async def test_a_send_refused_as_busy_does_not_use_up_the_limit(sim):
    await database_sync_to_async(set_plan)(
        "free", message_rate_user="2/d", message_rate_group="100/d"
    )
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=400")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="First")
    await frames_until(tab, "delta")
    for _ in range(3):
        await send(tab, type="message.send", content="Again")
        assert (await frames_until(tab, "error"))[-1]["code"] == "busy"
    await send(tab, type="run.stop")
    await frames_until(tab, "run.stopped")
    await send(tab, type="message.send", content="Second")
    frames = await frames_until(tab, "run.started", "error")
    assert frames[-1]["type"] == "run.started"
    await send(tab, type="run.stop")
    await frames_until(tab, "run.stopped")
    await tab.disconnect()


async def test_resumes_are_bounded_per_socket(sim):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Hi")
    await frames_until(tab, "run.completed")
    replayed = refused = 0
    for _ in range(30):
        await send(tab, type="stream.resume", after_seq=0)
    while replayed + refused < 30:
        frame = await tab.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "error":
            assert frame["code"] == "rate_limited" and frame["retry_after"] >= 1
            refused += 1
        elif frame["type"] == "run.completed":
            replayed += 1
    assert refused >= 15 and replayed <= 15
    await tab.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type": "message.send", "content": "a\\u0000b"}', "bad_text"),
        ('{"type": "message.send", "content": "broken \\ud800 text"}', "bad_text"),
        ('{"type": "message.send", "content": "ok", "client_id": "\\u0000"}', "bad_frame"),
        ("[" * 100_000 + "]" * 100_000, "bad_json"),
        ('{"type": "message.send", "content": ' + "[" * 50_000 + "]" * 50_000 + "}", "bad_json"),
    ],
)
async def test_unstorable_text_and_deep_json_are_refused_and_nothing_is_saved(sim, raw, code):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await tab.send_to(text_data=raw)
    frame = await tab.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", code)

    @database_sync_to_async
    def count():
        with group_scope(tenant.group):
            return Message.objects.count()

    assert await count() == 0
    await send(tab, type="message.send", content="Still there?")
    assert (await frames_until(tab, "run.completed"))[-1]["type"] == "run.completed"
    await tab.disconnect()


@pytest.mark.parametrize(
    ("origin", "host", "admitted"),
    [
        ("http://testserver", "testserver", True),
        ("http://testserver:80", "testserver", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),  # another port
        ("https://127.0.0.1:8000", "127.0.0.1:8000", False),  # another scheme
        ("https://testserver", "testserver", False),
        ("http://testserver", "evil.example", False),  # a host the site does not serve
        ("null", "testserver", False),
        ("https://chat.example.com", "internal:8000", True),  # CSRF_TRUSTED_ORIGINS
    ],
)
async def test_the_origin_must_be_the_sites_own_in_full(sim, settings, origin, host, admitted):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1", "internal"]
    tenant, thread = await chat_setup()
    tab, connected = await connect(thread.pk, tenant.member, origin=origin, host=host)
    assert connected is admitted
    await tab.disconnect()


# --- every frame gets an answer; where a socket stands (issue: faults, protocol cases) ------


async def test_a_tab_opened_mid_run_is_told_at_once_and_resume_answers_where_it_stands(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=60;words=60")
    first, _ = await connect(thread.pk, tenant.member)
    await send(first, type="message.send", content="Go")
    run_id = (await frames_until(first, "run.started"))[-1]["run_id"]
    late, _ = await connect(thread.pk, tenant.member)
    assert await late.receive_json_from(timeout=TIMEOUT) == {"type": "run.active", "run_id": run_id}
    await send(late, type="stream.resume", after_seq=0, run_id=run_id)
    frames = await frames_until(late, "stream.resumed")
    resumed = frames[-1]
    assert resumed["run_id"] == run_id and resumed["streaming"] is True
    assert seqs(frames) == list(range(1, resumed["last_seq"] + 1))
    frames += await frames_until(late, "run.completed")
    assert seqs(frames) == list(range(1, seqs(frames)[-1] + 1))
    await send(late, type="stream.resume", after_seq=seqs(frames)[-1])
    done = await late.receive_json_from(timeout=TIMEOUT)
    assert (done["type"], done["last_seq"], done["streaming"]) == (
        "stream.resumed",
        seqs(frames)[-1],
        False,
    )
    for tab in (first, late):
        await tab.disconnect()


async def test_a_resume_naming_an_older_run_gets_its_rest_then_the_newer_run_whole(sim):
    tenant, thread = await chat_setup(model="sim-gpt@text;words=12")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="One")
    older = await frames_until(tab, "run.completed")
    await send(tab, type="message.send", content="Two")
    newer = await frames_until(tab, "run.completed")
    older_id, newer_id = older[-1]["run_id"], newer[-1]["run_id"]
    assert older_id != newer_id

    again, _ = await connect(thread.pk, tenant.member)
    await send(again, type="stream.resume", after_seq=3, run_id=older_id)  # away since seq 3
    replay = await frames_until(again, "stream.resumed")
    got = [(f["run_id"], f["seq"]) for f in replay if "seq" in f]
    assert got == [(older_id, s) for s in seqs(older) if s > 3] + [
        (newer_id, s) for s in seqs(newer)
    ]
    assert replay[-1]["run_id"] == newer_id and replay[-1]["last_seq"] == seqs(newer)[-1]
    for socket in (tab, again):
        await socket.disconnect()


async def test_a_stop_with_nothing_to_stop_is_answered_and_one_for_another_run_stops_nothing(sim):
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=60;words=80")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="run.stop")
    refused = await tab.receive_json_from(timeout=TIMEOUT)
    assert (refused["type"], refused["code"]) == ("error", "not_running")

    await send(tab, type="message.send", content="Go")
    run_id = (await frames_until(tab, "run.started"))[-1]["run_id"]
    await send(tab, type="run.stop", run_id=str(uuid.uuid4()))
    frames = await frames_until(tab, "error", "run.completed")
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "not_running")
    assert "run_id" not in frames[-1]  # a refusal of the frame, not the run's end
    await send(tab, type="run.stop", run_id=run_id)
    stopped = await frames_until(tab, "run.stopped", "run.completed")
    assert stopped[-1]["type"] == "run.stopped" and stopped[-1]["run_id"] == run_id
    await tab.disconnect()


@pytest.mark.parametrize(
    "frame",
    [{"type": "run.stop", "run_id": 7}, {"type": "stream.resume", "after_seq": 0, "run_id": "x"}],
)
async def test_a_bad_run_id_is_refused(sim, frame):
    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, **frame)
    refused = await tab.receive_json_from(timeout=TIMEOUT)
    assert (refused["type"], refused["code"]) == ("error", "bad_frame")
    await tab.disconnect()


async def test_a_run_in_this_process_sends_its_event_before_its_publish_returns(sim):
    from chat.fanout import local_fanout

    tenant, thread = await chat_setup()
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="stream.resume", after_seq=0)
    await frames_until(tab, "stream.resumed")  # the socket has joined its thread
    (consumer,) = local_fanout()._listeners[thread.pk]

    first = {"type": "delta", "run_id": "r1", "seq": 1, "text": "Hi"}
    await local_fanout().publish(thread.pk, first)
    assert tab.output_queue.qsize() == 1  # sent by the run's task: no queue, no task switch
    assert await tab.receive_json_from(timeout=TIMEOUT) == first

    # While the socket handles something else (a resume), later events wait their turn.
    later = [{"type": "delta", "run_id": "r1", "seq": n, "text": str(n)} for n in (2, 3)]
    async with consumer.events_lock:
        for event in later:
            await local_fanout().publish(thread.pk, event)
        assert tab.output_queue.empty()
    assert [await tab.receive_json_from(timeout=TIMEOUT) for _ in later] == later
    last = {"type": "run.completed", "run_id": "r1", "seq": 4}
    await local_fanout().publish(thread.pk, last)
    assert await tab.receive_json_from(timeout=TIMEOUT) == last
    await tab.disconnect()


async def test_a_tab_opening_in_another_process_mid_run_is_published_to_from_the_next_event(sim):
    """The run looks at its thread's group rarely (chat.fanout.REMOTE_CHECK_SECONDS): a tab
    that opens elsewhere says so to the run (follow), which publishes to it at once."""
    tenant, thread = await chat_setup(model="sim-gpt@slow;ttft_ms=0;tps=30;words=90")
    tab, _ = await connect(thread.pk, tenant.member)
    await send(tab, type="message.send", content="Go")
    frames = await frames_until(tab, "delta")
    remote = registry().runs[thread.pk].sink.remote
    while remote._remote:  # the run's first look: no tab in another process
        frames.append(await tab.receive_json_from(timeout=TIMEOUT))
        assert frames[-1]["type"] != "run.completed"
    elsewhere = RunRegistry()  # another daphne's, whose tab opens now
    assert await elsewhere.follow(thread.pk) == frames[1]["run_id"]
    while not remote._remote:
        frames.append(await tab.receive_json_from(timeout=TIMEOUT))
        assert frames[-1]["type"] != "run.completed", "the run never heard of the tab"
    await frames_until(tab, "run.completed")
    await tab.disconnect()
