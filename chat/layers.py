"""The channel layer: channels_redis, tuned for redis-py 8.

* Its blocking read is shorter than redis-py's socket timeout. redis-py 8 times socket
  reads out after 5 s by default, and channels_redis blocks on BZPOPMIN for exactly 5 s,
  so the read of an idle process timed out just as the server answered and crashed the
  consumers of idle sockets (channels_redis#422). A longer socket timeout instead makes
  every cancelled read wait it out; a shorter blocking wait does not.
* Its connection pools wait for a free connection. redis-py 8 caps a pool at 100
  connections and fails the 101st call at once ("Too many connections"); with a few
  hundred streams a process sends that many group messages at the same moment.
"""

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from django.conf import settings
from redis.asyncio import BlockingConnectionPool

BLOCKING_READ_SECONDS = 2
POOL_WAIT_SECONDS = 10


class RedisChannelLayer(BaseRedisChannelLayer):
    brpop_timeout = BLOCKING_READ_SECONDS

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinel or keyword hosts: channels_redis' own pool
            return super().create_pool(index)
        return BlockingConnectionPool.from_url(
            host.pop("address"),
            max_connections=settings.PARLEY_CHANNEL_LAYER_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            **host,
        )
