"""The channel layer: channels_redis, tuned for redis-py 8 and for a Redis that restarts.

* Its blocking read is shorter than redis-py's socket timeout. redis-py 8 times socket
  reads out after 5 s by default, and channels_redis blocks on BZPOPMIN for exactly 5 s,
  so the read of an idle process timed out just as the server answered and crashed the
  consumers of idle sockets (channels_redis#422). A longer socket timeout instead makes
  every cancelled read wait it out; a shorter blocking wait does not.
* Its connection pools wait for a free connection. redis-py 8 caps a pool at 100
  connections and fails the 101st call at once ("Too many connections"); with a few
  hundred streams a process sends that many group messages at the same moment.
* It rides out a Redis restart. A read that loses its connection tries again with backoff
  instead of raising: channels' consumers read through it, and one that raises closes every
  socket of the process with 1011. Joining and leaving a group and sending to a channel try
  again for a while (PATIENCE_SECONDS); a group send does not (a run's batches must not
  wait: the tabs of other processes read what they missed from the run log). The layer
  remembers which groups its channels joined, and `rejoin_groups()` adds them again once
  the server is a new one with nothing in it (chat.runs watches for that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from django.conf import settings
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.cache import DRIVER_INFO
from ontology.autopipeline import AutoPipeline

logger = logging.getLogger(__name__)

BLOCKING_READ_SECONDS = 2
POOL_WAIT_SECONDS = 10
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 1.0
PATIENCE_SECONDS = 10.0  # how long a group join or a send waits for Redis to come back
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Backoff:
    """Waits that double from RETRY_FIRST_SECONDS up to RETRY_MAX_SECONDS."""

    def __init__(self) -> None:
        self.delay = RETRY_FIRST_SECONDS

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MAX_SECONDS)


class RedisChannelLayer(BaseRedisChannelLayer):
    brpop_timeout = BLOCKING_READ_SECONDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.memberships: dict[str, set[str]] = defaultdict(set)  # group -> our channels
        self._unreachable_since: float | None = None

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinel or keyword hosts: channels_redis' own pool
            return super().create_pool(index)
        return BlockingConnectionPool.from_url(
            host.pop("address"),
            max_connections=settings.PARLEY_CHANNEL_LAYER_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            driver_info=DRIVER_INFO,
            **host,
        )

    # --- reads: never give up ------------------------------------------------------------

    async def receive(self, channel):
        backoff = Backoff()
        while True:
            try:
                message = await super().receive(channel)
            except UNREACHABLE as error:
                self._unreachable(error)
                await backoff.wait()
                continue
            self._reachable()
            return message

    # --- writes: try again for a while ---------------------------------------------------

    async def group_add(self, group, channel):
        self.memberships[group].add(channel)
        await self._patiently(self._group_add, group, channel)

    async def _group_add(self, group, channel):
        """channels_redis' group_add (the channel in the group's sorted set, the set's expiry
        pushed back), both commands in the same pipeline, with every other socket's join
        waiting to go (ontology.autopipeline): every socket joins a group as it opens, and
        200 opening at once each took a connection of their own, most of them new."""
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        key = self._group_key(group)
        joins = AutoPipeline.of(self.connection(self.consistent_hash(group)))
        await asyncio.gather(
            joins.queue("ZADD", key, time.time(), channel),
            joins.queue("EXPIRE", key, self.group_expiry),
        )

    async def group_discard(self, group, channel):
        """Leave a group; when Redis stays away the membership is left to expire (a message
        for a gone channel only waits in Redis until it expires)."""
        channels = self.memberships.get(group)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.memberships[group]
        try:
            await self._patiently(super().group_discard, group, channel)
        except UNREACHABLE:
            logger.warning("could not leave group %s: Redis is unreachable", group)

    async def send(self, channel, message):
        await self._patiently(super().send, channel, message)

    async def send_now(self, channel, message):
        """Send once, for a message that is only a hint (a tab follows a run)."""
        try:
            await super().send(channel, message)
        except UNREACHABLE as error:
            self._unreachable(error)
            raise
        self._reachable()

    async def group_send(self, group, message):
        try:
            await super().group_send(group, message)
        except UNREACHABLE as error:
            self._unreachable(error)
            raise
        self._reachable()

    async def rejoin_groups(self) -> int:
        """Add this process's channels to their groups again (after Redis lost them)."""
        joined = 0
        for group, channels in list(self.memberships.items()):
            for channel in list(channels):
                await self._patiently(self._group_add, group, channel)
                joined += 1
        return joined

    async def server_id(self) -> str:
        """The Redis server's run id: a new one means a restarted server."""
        info = await self.connection(0).info("server")
        return str(info.get("run_id", ""))

    @property
    def unreachable(self) -> bool:
        """Whether the last call found Redis away (callers may skip optional sends)."""
        return self._unreachable_since is not None

    async def _patiently(self, operation, *args):
        deadline = time.monotonic() + PATIENCE_SECONDS
        backoff = Backoff()
        while True:
            try:
                result = await operation(*args)
            except UNREACHABLE as error:
                self._unreachable(error)
                if time.monotonic() + backoff.delay > deadline:
                    raise
                await backoff.wait()
                continue
            self._reachable()
            return result

    def _unreachable(self, error: BaseException) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            logger.warning("Redis is unreachable (%s); the channel layer tries again", error)

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            away = time.monotonic() - self._unreachable_since
            self._unreachable_since = None
            logger.warning("Redis is reachable again after %.1f s", away)
