"""The cache's Redis, for code that runs in the event loop (an API request's admission).

Django's cache is sync: called from a coroutine it blocks the loop, and its async methods
only move the call to a thread. redis-py's asyncio client talks to the same server without
either, so a request whose token and configuration are cached in the process is admitted
without leaving the loop (api.auth). One client per event loop (a connection belongs to
the loop that opened it) and per cache location, with the cache's timeouts and its
`DRIVER_INFO` (config.cache: no package metadata read per connection); keys are made
with the cache's `make_key`, so both clients see the same data. `batched()` sends the
commands of every socket and turn waiting at once together (ontology.autopipeline).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import Redis

from config.cache import DRIVER_INFO
from ontology.autopipeline import AutoPipeline

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Redis]] = (
    weakref.WeakKeyDictionary()
)
_OPTIONS = ("socket_connect_timeout", "socket_timeout", "health_check_interval")


def _where() -> tuple[str, dict[str, Any]]:
    configured = settings.CACHES["default"]
    location = configured["LOCATION"]
    if isinstance(location, str):
        location = location.split(",")
    options = configured.get("OPTIONS", {})
    return location[0].strip(), {name: options[name] for name in _OPTIONS if name in options}


def client() -> Redis:
    """This event loop's client of the cache's (first, writable) Redis server."""
    url, options = _where()
    key = (url, tuple(sorted(options.items())))
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(key)
    if found is None:
        found = per_loop[key] = Redis.from_url(url, driver_info=DRIVER_INFO, **options)
    return found


def batched() -> AutoPipeline:
    """This event loop's client, its commands sent together with the others waiting
    (ontology.autopipeline): for the commands every socket and turn sends."""
    return AutoPipeline.of(client())
