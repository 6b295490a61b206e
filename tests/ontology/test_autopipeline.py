"""ontology.autopipeline: commands from many coroutines go to Redis together, each with its
own answer or error."""

import asyncio
import socket

import pytest
from django.conf import settings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from chat.layers import RedisChannelLayer
from ontology import async_redis
from ontology.autopipeline import AutoPipeline


@pytest.fixture
async def redis():
    client = async_redis.client()
    yield client
    await client.delete("ap:counter", "ap:text", "ap:script")


async def test_commands_queued_together_go_in_one_pipeline_in_order(redis):
    batched = AutoPipeline(redis)
    answers = await asyncio.gather(
        batched.set("ap:text", "first"),
        batched.get("ap:text"),
        *(batched.incr("ap:counter") for _ in range(20)),
        batched.get("ap:counter"),
    )
    assert batched.batches == 1
    assert answers[0] is True and answers[1] == b"first"
    assert answers[2:22] == list(range(1, 21))  # each its own answer, in the order queued
    assert answers[22] == b"20"
    assert await batched.get("ap:text") == b"first"  # alone, the next turn's own pipeline
    assert batched.batches == 2


async def test_one_commands_error_is_its_own(redis):
    batched = AutoPipeline(redis)
    await redis.set("ap:text", "not a number")
    counted, text, after = await asyncio.gather(
        batched.incr("ap:text"),
        batched.get("ap:text"),
        batched.incr("ap:counter"),
        return_exceptions=True,
    )
    assert isinstance(counted, ResponseError)
    assert text == b"not a number" and after == 1


async def test_a_later_turns_commands_do_not_wait_for_the_pipeline_in_flight(redis):
    class Watched(AutoPipeline):
        sending = asyncio.Event()
        first_answered_when_next_sent: list[bool] = []

        async def _run(self, batch):
            if self.batches > 1:
                self.first_answered_when_next_sent.append(first.done())
            self.sending.set()
            return await super()._run(batch)

    batched = Watched(redis)
    first = batched.queue("INCR", "ap:counter")
    await batched.sending.wait()  # the sender has sent it and waits for the answer
    assert not first.done() and batched.batches == 1
    later = [batched.queue("INCR", "ap:counter") for _ in range(5)]
    answers = await asyncio.gather(first, *later)
    assert sorted(answers) == [1, 2, 3, 4, 5, 6]
    assert answers[1:] == sorted(answers[1:])  # in order within their pipeline
    assert batched.batches == 2
    assert batched.first_answered_when_next_sent == [False]


async def test_a_registered_script_runs_through_it_and_is_loaded_again_when_flushed(redis):
    batched = AutoPipeline(redis)
    script = redis.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert await script(keys=["ap:script"], args=[5], client=batched) == 5
    await redis.script_flush()
    assert await script(keys=["ap:script"], args=[2], client=batched) == 7  # NOSCRIPT: loaded


async def test_an_unreachable_server_fails_every_command_and_the_next_ones_too():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    client = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    batched = AutoPipeline(client)
    failed = await asyncio.gather(batched.get("a"), batched.get("b"), return_exceptions=True)
    assert all(isinstance(error, RedisConnectionError) for error in failed)
    with pytest.raises(RedisConnectionError):  # not left waiting: the sender started again
        await asyncio.wait_for(batched.get("c"), 10)
    await client.aclose()


async def test_a_cancelled_caller_leaves_the_others_their_answers(redis):
    batched = AutoPipeline(redis)
    cancelled = asyncio.ensure_future(batched.incr("ap:counter"))
    kept = asyncio.ensure_future(batched.incr("ap:counter"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept == 2  # both were sent; the cancelled one's answer is dropped
    assert await batched.get("ap:counter") == b"2"


async def test_many_sockets_joining_at_once_share_pipelines_and_connections():
    """200 sockets opening at once each joined their thread's group on a connection of
    their own, most of them new (a TCP and Redis handshake each, on the event loop)."""
    layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    channels = [await layer.new_channel() for _ in range(100)]
    try:
        await asyncio.gather(*(layer.group_add(f"burst{n}", c) for n, c in enumerate(channels)))
        redis = layer.connection(0)
        pool = redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
        assert AutoPipeline.of(redis).batches <= 2
        for n, channel in enumerate(channels[:5]):
            assert await redis.zscore(layer._group_key(f"burst{n}"), channel) is not None
    finally:
        for n, channel in enumerate(channels):
            await layer.group_discard(f"burst{n}", channel)
        await layer.close_pools()
