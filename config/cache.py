"""The Redis cache backend, with one client (and connection pool) per process.

Django keeps a cache backend instance per thread and per async context, and each
instance of its RedisCache builds its own client and connection pools. Every
WebSocket and every run is an async context of its own, so each opened fresh
connections to Redis (connect, handshake) for its first rate-limit count or lock.
Here every instance with the same servers and options shares one client; redis-py's
pools are thread-safe and reset themselves in a forked child.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            if key not in _clients:
                _clients[key] = self._class(self._servers, **self._options)
            return _clients[key]
