"""Sessions kept in PostgreSQL and read through the cache (Redis), that still work while
Redis is away.

Django's cached_db store reads the cache first and the database when the cache has
nothing, but it writes the cache after every database read and every save, and an
unreachable Redis turns those writes into errors: every page and socket opening failed
while Redis was away although the session was in PostgreSQL all along. Here the database
stays the truth and the cache a shortcut:

- a read (or a new key's check) that cannot reach Redis reads the database, and does not
  try to fill the cache;
- a save that cannot reach Redis is kept in the database (as Django's): the cache may
  still hold an older copy of the same session, which is never more than the new one allows (signing
  in and changing a password take a new session key, and signing out elsewhere is checked
  against the user's session generation, ontology.accounts);
- a delete (signing out) removes the cached copy first and fails when Redis is away, so
  a session never outlives its sign-out in a cache that comes back.
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.db import SessionStore as DBStore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class SessionStore(CachedDBStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except UNREACHABLE:
            return DBStore.load(self)  # the cache is away: do not try to fill it either
        except Exception:  # as Django's: some backends refuse a malformed key (#17810)
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        self._cache_quietly(data, self.get_expiry_age(expiry=stored.expire_date))
        return data

    def exists(self, session_key):
        try:
            return super().exists(session_key)
        except UNREACHABLE:
            return DBStore.exists(self, session_key)

    def delete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._cache.delete(self.cache_key_prefix + session_key)  # raises while Redis is away
        DBStore.delete(self, session_key)

    def _cache_quietly(self, data, timeout) -> None:
        try:
            self._cache.set(self.cache_key, data, timeout)
        except UNREACHABLE:
            logger.warning("Redis is away: session kept in the database only")


def load_together(sessions) -> None:
    """Read the sessions not read yet with one cache read (Redis MGET) where each would make
    its own: sockets opening together (chat.consumers). Each session found is loaded from
    it, as its `load` would have; one the cache lacks (or all of them, while Redis is away)
    is left to load on first use, from the database as its `load` does. A session of another
    engine is left to load as it does."""
    waiting: dict[str, list] = {}
    for session in sessions:
        if (
            isinstance(session, SessionStore)
            and session.session_key is not None
            and not hasattr(session, "_session_cache")
        ):
            waiting.setdefault(session.cache_key_prefix + session.session_key, []).append(session)
    if not waiting:
        return
    cache = next(iter(waiting.values()))[0]._cache
    try:
        found = cache.get_many(list(waiting))
    except Exception:  # Redis away, or what `load` also survives: each then reads alone
        return
    for key, data in found.items():
        for session in waiting[key]:
            session._session_cache = dict(data)  # each its own, as each load gives
