"""Valkey (the Redis-protocol server) is killed by its pid and started again, empty, while an
answer streams in one of two real daphne processes: the run keeps its thread, a stop from
the other process reaches it, and sockets old and new keep working. Synchronised on frames;
no sleeps."""

import aiohttp
import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from ontology.scoping import group_scope
from tests.chat.test_consumers import session_cookie
from tests.faults.conftest import Socket, a_thread, of_type

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]

ENDED = ("run.stopped", "run.completed", "error")


def a_delta_after(seq: int):
    return lambda frame: frame["type"] == "delta" and frame["seq"] > seq


async def streaming(session, url: str):
    """A long answer streaming on a new thread from `url`: (cookie, thread, author, a delta)."""
    tenant, thread = await a_thread()
    cookie = await session_cookie(tenant.member)
    author = await Socket.open(session, url, thread.pk, cookie)
    await author.send(type="message.send", content="Tell me a long story")
    return cookie, thread, author, await author.until(of_type("delta"))


async def stop_from(socket: Socket, *listeners: Socket) -> None:
    """`socket` stops the run; each listener (a socket that follows the run) hears it end."""
    await socket.send(type="run.stop")
    for listener in listeners:
        assert (await listener.until(of_type(*ENDED)))["type"] == "run.stopped"


async def test_a_second_answer_on_the_thread_is_refused_while_the_first_streams(
    two_processes, valkey
):
    here, there = two_processes
    async with aiohttp.ClientSession() as session:
        cookie, thread, author, delta = await streaming(session, here)
        valkey.kill_and_restart()  # the lock is gone from Valkey; the run streams on

        other = await Socket.open(session, there, thread.pk, cookie)
        await other.send(type="message.send", content="And another one")
        refusal = await other.until(of_type("error", "message.created"))
        assert (refusal["type"], refusal.get("code")) == ("error", "busy"), refusal
        await author.until(a_delta_after(delta["seq"]))  # the first still streams
        await stop_from(author, author)
        for socket in (author, other):
            await socket.close()


async def test_a_stop_from_another_process_reaches_the_run(two_processes, valkey):
    here, there = two_processes
    async with aiohttp.ClientSession() as session:
        cookie, thread, author, delta = await streaming(session, here)
        valkey.kill_and_restart()

        other = await Socket.open(session, there, thread.pk, cookie)
        active = await other.until(of_type("run.active"))  # told of the run at once
        assert active["run_id"] == delta["run_id"]
        await stop_from(other, author)
        for socket in (author, other):
            await socket.close()


async def test_a_socket_opened_while_valkey_is_away_works_once_it_is_back(two_processes, valkey):
    here, there = two_processes
    async with aiohttp.ClientSession() as session:
        cookie, thread, author, delta = await streaming(session, here)
        valkey.kill()

        other = await Socket.open(session, there, thread.pk, cookie)
        with pytest.raises(TimeoutError):  # not closed (1011) while Valkey is away
            await other.until(lambda frame: True, within=0.5)
        valkey.start()

        await other.send(type="stream.resume", after_seq=0)
        live = await other.until(a_delta_after(delta["seq"] + 5))
        assert live["run_id"] == delta["run_id"]
        seqs = [frame["seq"] for frame in other.run_frames(delta["run_id"])]
        assert seqs == list(range(1, seqs[-1] + 1))  # every event once, in order
        await stop_from(other, author, other)
        for socket in (author, other):
            await socket.close()


async def test_a_socket_open_across_a_restart_keeps_hearing_a_run_of_another_process(
    two_processes, valkey
):
    here, there = two_processes
    async with aiohttp.ClientSession() as session:
        cookie, thread, author, _ = await streaming(session, here)
        watcher = await Socket.open(session, there, thread.pk, cookie)
        await watcher.send(type="stream.resume", after_seq=0)
        first = await watcher.until(of_type("delta"))
        valkey.kill_and_restart()

        # neither closed nor left silent: its process rejoins its group, the run reaches it
        live = await watcher.until(a_delta_after(first["seq"] + 5), within=15)
        assert live["run_id"] == first["run_id"]
        await stop_from(author, watcher)
        for socket in (author, watcher):
            await socket.close()


async def test_a_send_while_valkey_is_away_is_refused_in_words_and_stores_nothing(
    two_processes, valkey
):
    here, _ = two_processes
    tenant, thread = await a_thread()
    cookie = await session_cookie(tenant.member)
    async with aiohttp.ClientSession() as session:
        socket = await Socket.open(session, here, thread.pk, cookie)
        await socket.send(type="stream.resume", after_seq=0)
        await socket.until(of_type("stream.resumed"))  # joined and answering
        valkey.kill()
        try:
            await socket.send(type="message.send", content="Anyone there?")
            refusal = await socket.until(of_type("error", "message.created"), within=30)
            assert (refusal["type"], refusal["code"]) == ("error", "unavailable"), refusal
            assert not await stored_messages(tenant.group, thread)
        finally:
            valkey.start()
        await socket.send(type="message.send", content="Anyone there now?")
        created = await socket.until(of_type("message.created", "error"), within=30)
        assert created["type"] == "message.created", created
        await socket.until(of_type(*ENDED), within=120)
        await socket.close()


@database_sync_to_async
def stored_messages(group, thread):
    with group_scope(group):
        return list(Message.objects.filter(thread=thread))
