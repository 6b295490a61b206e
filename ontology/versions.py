"""A per-group configuration version, shared by every process through Redis.

Processes cache a group's slow-changing configuration (agents, provider keys)
and check this token before using it. Writes bump it when their transaction
commits. The token is random, not a counter: after a Redis restart the key is
missing, a fresh token is made, and every process reloads.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import transaction

from ontology import async_redis

_KEY = "config-version:{group_id}"
_TIMEOUT = None  # never expires by itself
_serializer = RedisSerializer()  # how the cache stores what it is given (a pickle)


def version(key: str) -> str | None:
    """The token of a version key, made when missing (one GET when it is there). None only
    when a bump deleted it again in between: use what you read, and keep nothing under it."""
    token = cache.get(key)
    if token is None:
        cache.add(key, uuid.uuid4().hex, timeout=_TIMEOUT)
        token = cache.get(key)
    return token


def bump_version(key: str) -> None:
    """Invalidate what every process keeps under the version key once this commits."""
    # robust: a Redis hiccup must not turn a committed change into an error page.
    transaction.on_commit(lambda: cache.delete(key), robust=True)


def group_version(group_id: int) -> str:
    return version(_KEY.format(group_id=group_id))


def group_version_key(group_id: int) -> str:
    """The group's version key as stored in Redis (with the cache's prefix), for reading it
    with other keys in one round trip; group_version_of reads its raw value."""
    return cache.make_key(_KEY.format(group_id=group_id))


def group_version_of(raw: bytes | None) -> str | None:
    """A version from the raw value of group_version_key (None: the group has none yet;
    group_version makes it)."""
    return None if raw is None else _serializer.loads(raw)


async def agroup_version(group_id: int) -> str | None:
    """group_version from the event loop (ontology.async_redis), or None when the group has
    none yet (group_version makes it). Raises redis' errors."""
    return group_version_of(await async_redis.batched().get(group_version_key(group_id)))


def bump_group_version(group_id: int) -> None:
    """Invalidate every process's cached configuration of the group once this commits."""
    bump_version(_KEY.format(group_id=group_id))


# --- API tokens: one version per token, named by its digest ---------------------------------
#
# Each process keeps the tokens it admitted (ontology.token_cache) and checks the token's
# version before using one. The key is named by the token's digest, which a request
# carries, so a process can read it before it has read the token from the database (read
# the version first, then the rows: a change committed in between leaves a stale version,
# never stale rows under a fresh one). The value is random and only ever set where missing,
# in the same Lua call as the request's rate-limit counts (billing.counters); a bump deletes
# it. Values are raw strings, not the cache's pickles: read them with the raw client only.

_ADMISSION_KEY = "token-version:{digest}"


def token_version_key(digest: str) -> str:
    """The token's version key, as stored in Redis (with the cache's prefix)."""
    return cache.make_key(_ADMISSION_KEY.format(digest=digest))


def bump_token_versions(digests: list[str]) -> None:
    """Stop every process's cached admission of these tokens once this commits."""
    if not digests:
        return
    keys = [_ADMISSION_KEY.format(digest=digest) for digest in digests]
    transaction.on_commit(lambda: cache.delete_many(keys), robust=True)
