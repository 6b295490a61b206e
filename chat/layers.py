"""The channel layer: channels_redis, with its blocking read shorter than redis-py's timeout.

redis-py 8 times socket reads out after 5 s by default, and channels_redis blocks on
BZPOPMIN for exactly 5 s, so the read of an idle process timed out just as the server
answered and crashed the consumers of idle sockets (channels_redis#422). A longer socket
timeout instead makes every cancelled read wait it out; a shorter blocking wait does not.
"""

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer

BLOCKING_READ_SECONDS = 2


class RedisChannelLayer(BaseRedisChannelLayer):
    brpop_timeout = BLOCKING_READ_SECONDS
