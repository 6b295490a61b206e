"""The cache backend shares one Redis client per process across threads and async contexts."""

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core.cache import cache, caches


def redis_connections_received() -> int:
    client = cache._cache.get_client(None, write=True)
    return client.info("stats")["total_connections_received"]


async def test_many_async_contexts_reuse_one_client_and_its_connections():
    threads = ThreadPoolExecutor(max_workers=4)
    before = await sync_to_async(redis_connections_received, thread_sensitive=False)()

    async def in_its_own_context(n):  # a socket or a run: a task, so a context, of its own
        def count():
            cache.add(f"context-test:{n}", n, 30)
            return id(caches["default"]._cache)

        return await sync_to_async(count, thread_sensitive=False, executor=threads)()

    # Fresh contexts, as daphne gives each connection: nothing inherited from this test.
    tasks = [
        asyncio.create_task(in_its_own_context(n), context=contextvars.Context()) for n in range(60)
    ]
    clients = await asyncio.gather(*tasks)
    after = await sync_to_async(redis_connections_received, thread_sensitive=False)()

    assert len(set(clients)) == 1
    threads.shutdown()
    # At most one new connection per thread that ran a command at once, and the count of
    # this test's own (Django's backend opened one per context here: 60 and more).
    assert after - before <= 4 + 1


def test_every_cache_call_uses_the_same_redis_client():
    # Django's client builds a redis-py client per call, copying its callback table each time.
    first = cache._cache.get_client(None, write=True)
    cache.set("client-test", 1, 30)
    assert cache._cache.get_client(None, write=True) is first
    assert cache._cache.get_client(None) is first  # one server: reads use the same pool


def test_new_connections_name_redis_py_without_reading_package_metadata():
    """Both pools hand every new connection the one DriverInfo made at import, so redis-py
    does not look its version up in the installed packages for each (CLIENT SETINFO still
    names it)."""
    from channels.layers import get_channel_layer

    from config.cache import DRIVER_INFO

    cache_pool = cache.redis_client().connection_pool
    layer_pool = get_channel_layer().create_pool(0)
    for pool in (cache_pool, layer_pool):
        connection = pool.make_connection()
        assert connection.driver_info is DRIVER_INFO
    assert DRIVER_INFO.lib_version and DRIVER_INFO.name == "redis-py"
