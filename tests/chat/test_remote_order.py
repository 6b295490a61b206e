"""A run's events reach tabs in other processes in the order the run sent them: its end,
published at once, never overtakes a batch of its text still on its way (chat.runs.EventLog)."""

import asyncio
import uuid

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

from chat.fanout import thread_group
from chat.runs import EventLog
from tests.chat.test_consumers import TIMEOUT, chat_setup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache"),
]


async def test_the_runs_end_waits_for_the_batch_before_it(monkeypatch):
    tenant, thread = await chat_setup()
    elsewhere = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)  # another daphne's layer
    channel = await elsewhere.new_channel()
    await elsewhere.group_add(thread_group(thread.pk), channel)
    gate, first_on_its_way = asyncio.Event(), asyncio.Event()

    async def let_the_first_batch_go():
        gate.set()  # from here the first batch and the run's end race to Redis

    log = EventLog(group=tenant.group, thread=thread, before_final=let_the_first_batch_go)
    layer = log.remote.layer
    group_send = layer.group_send

    async def held(group, message):
        """The first batch waits at the gate, as a send slowed by the network would."""
        if not first_on_its_way.is_set():
            first_on_its_way.set()
            await gate.wait()
        return await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", held)
    run_id = str(uuid.uuid4())
    await log.emit({"type": "delta", "run_id": run_id, "seq": 1, "text": "Hello"})
    await first_on_its_way.wait()  # logged, and its batch on its way
    final = {"type": "run.completed", "run_id": run_id, "seq": 2, "message_id": "m"}
    await log.emit(final)

    heard = []
    while not heard or heard[-1]["type"] != "run.completed":
        message = await asyncio.wait_for(elsewhere.receive(channel), TIMEOUT)
        heard += message["events"]
    assert [event["seq"] for event in heard] == [1, 2]
    await log.close()
    await elsewhere.group_discard(thread_group(thread.pk), channel)
    await elsewhere.close_pools()
