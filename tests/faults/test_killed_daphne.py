"""A daphne process killed by its pid while it streams an answer: the tabs on the other
process hear, within seconds, that the answer was interrupted, with every word they were
shown kept; the call is billed as estimated, its budget hold given back, and the thread is
free for the next question. Synchronised on frames; no sleeps."""

import asyncio
import os
import signal
import time

import aiohttp
import pytest
from channels.db import database_sync_to_async

from billing.models import AICall, BudgetReservation
from chat.models import Message
from ontology.scoping import group_scope
from tests.chat.test_consumers import session_cookie
from tests.faults.conftest import Socket, a_thread, of_type
from tests.servers import daphne_servers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("thread_connections"),
]

NOTICED_WITHIN = 30  # seconds: the heartbeat is 12 s stale, swept every 4 s


def interrupted(frame: dict) -> bool:
    return frame["type"] == "error" and frame.get("code") == "interrupted"


@database_sync_to_async
def what_was_kept(group, run_id):
    with group_scope(group):
        answer = Message.objects.get(run_id=run_id)
        calls = list(AICall.objects.filter(run_id=run_id))
        holds = BudgetReservation.objects.filter(run_id=run_id).count()
    return answer, calls, holds


async def test_a_killed_daphne_is_told_to_every_tab_and_its_call_is_billed(simulator):
    pids: list[int] = []
    tenant, thread = await a_thread()
    cookie = await session_cookie(tenant.member)
    with daphne_servers(2, simulator_url=simulator.url, pids=pids) as (doomed, survivor):
        async with aiohttp.ClientSession() as session:
            author = await Socket.open(session, doomed, thread.pk, cookie)
            watcher = await Socket.open(session, survivor, thread.pk, cookie)
            await watcher.send(type="stream.resume", after_seq=0)
            await watcher.until(of_type("stream.resumed"))
            await author.send(type="message.send", content="Tell me a long story")
            run_id = (await author.until(of_type("run.started")))["run_id"]
            await watcher.until(lambda f: f["type"] == "delta" and f["seq"] > 20)

            os.kill(pids[0], signal.SIGKILL)
            killed_at = time.monotonic()
            end = await watcher.until(interrupted, within=NOTICED_WITHIN)
            assert end["run_id"] == run_id
            assert time.monotonic() - killed_at < NOTICED_WITHIN

            shown = "".join(f["text"] for f in watcher.run_frames(run_id) if f["type"] == "delta")
            seqs = [f["seq"] for f in watcher.run_frames(run_id)]
            assert seqs == list(range(1, seqs[-1] + 1))  # every event once, in order
            answer, calls, holds = await what_was_kept(tenant.group, run_id)
            assert answer.status == Message.Status.INTERRUPTED
            assert answer.content == shown and end["message_id"] == str(answer.pk)
            (call,) = calls
            assert (call.error_code, call.usage_exact) == ("interrupted", False)
            assert call.output_tokens > 0 and call.cost > 0
            assert holds == 0

            await watcher.send(type="message.send", content="And another one")
            created = await watcher.until(of_type("message.created", "error"))
            assert created["type"] == "message.created", created  # the thread is free
            await watcher.send(type="run.stop")
            await watcher.until(of_type("run.stopped"))
            await asyncio.gather(author.close(), watcher.close(), return_exceptions=True)
