"""The Redis cache backend, with one client (and connection pool) per process.

Django keeps a cache backend instance per thread and per async context, and each
instance of its RedisCache builds its own client and connection pools. Every
WebSocket and every run is an async context of its own, so each opened fresh
connections to Redis (connect, handshake) for its first rate-limit count or lock.
Here every instance with the same servers and options shares one client; redis-py's
pools are thread-safe and reset themselves in a forked child.

That client also keeps one redis-py `Redis` per pool: Django's builds a new one for every
cache call, and each copies redis-py's table of ~170 response callbacks (a third of a
millisecond, nine times a chat turn).

Every pool, the channel layer's too, names redis-py's version once (`DRIVER_INFO`):
left out, redis-py looks it up in the installed packages' metadata for each new
connection, a third of a millisecond on an idle machine, as each busy pool fills.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property
from redis.driver_info import DriverInfo

DRIVER_INFO = DriverInfo(lib_version=redis.__version__)

_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool_options.setdefault("driver_info", DRIVER_INFO)
        self._redis: dict[int, Any] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._redis.get(id(pool))
        if client is None:
            client = self._redis.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class SharedRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def redis_client(self):
        """The shared redis-py client, for what the cache API cannot say in one round trip
        (billing.counters: several counters in one pipeline)."""
        return self._cache.get_client(write=True)

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            if key not in _clients:
                _clients[key] = self._class(self._servers, **self._options)
            return _clients[key]
