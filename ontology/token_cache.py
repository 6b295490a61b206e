"""The API tokens a process admitted, kept so the next request of a program needs no SQL.

Checking a token in Postgres (ontology.tokens.authenticate) costs about a millisecond on
every API request, and what it reads (the token, its user, the group and the user's role
there) almost never changes. So each process keeps what it read, by the token's digest,
and before using it checks the token's version in Redis (ontology.versions): one key, read
in the same Lua call that counts the request's rate limits (api.auth), so a cached
admission costs one Redis round trip and no query.

What ends or changes a token's access bumps its version when it commits: a revocation
(ontology.tokens.token_revoke), and, through Django's signals (ontology.receivers), any save
or delete of a token, a membership, a user (deactivation) or a group. Expiry needs no bump:
each use compares `expires_at` with the clock. An entry is also used for at most
LAST_USED_EVERY after the token's last recorded use, then read afresh: that keeps
`last_used_at` written once a minute as before, and bounds how long a bump lost to a Redis
outage at commit time could go unnoticed.

A version is always read before the rows it will guard (on a miss, by `admit`; after a
failed check, by the counting call), so a change committed in between leaves an entry whose
version is already old (it is read again next time), never old rows under a new version.
Without Redis nothing is admitted from here: api.auth asks the database.
"""

from __future__ import annotations

import copy
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from threading import Lock

from django.core.cache import cache
from django.utils import timezone
from redis.exceptions import RedisError

from ontology.tokens import (
    GROUP_FIELDS,
    JSON_FIELDS,
    LAST_USED_EVERY,
    TOKEN_FIELDS,
    USER_FIELDS,
    TokenAccess,
    access_of,
    authenticate,
)
from ontology.versions import token_version_key

logger = logging.getLogger(__name__)

MAX_TOKENS = 10_000


@dataclass(frozen=True)
class _Entry:
    version: str
    role: str
    token: tuple
    group: tuple
    user: tuple
    expires_at: datetime | None
    last_used_at: datetime


@dataclass(frozen=True)
class Cached:
    """A token this process admitted before, not yet checked: it stands only while the
    value of `key` in Redis is still `version`."""

    access: TokenAccess
    key: str
    version: str


_entries: OrderedDict[str, _Entry] = OrderedDict()
_lock = Lock()


def _values(instance, fields: tuple[str, ...]) -> tuple:
    return tuple(getattr(instance, name) for name in fields)


def _fresh(fields: tuple[str, ...], values: tuple) -> tuple:
    """The values, with private copies of the JSON ones (a view may change its objects)."""
    return tuple(
        copy.deepcopy(value) if name in JSON_FIELDS else value
        for name, value in zip(fields, values, strict=True)
    )


def cached(digest: str, now: datetime | None = None) -> Cached | None:
    """What this process last admitted the token with, if it has not expired and its use
    was recorded less than LAST_USED_EVERY ago; fresh model instances each time."""
    now = now or timezone.now()
    with _lock:
        entry = _entries.get(digest)
        if entry is not None:
            _entries.move_to_end(digest)
    if entry is None:
        return None
    if entry.expires_at is not None and entry.expires_at <= now:
        return None
    if now - entry.last_used_at >= LAST_USED_EVERY:
        return None
    access = access_of(
        entry.role,
        _fresh(TOKEN_FIELDS, entry.token),
        _fresh(GROUP_FIELDS, entry.group),
        _fresh(USER_FIELDS, entry.user),
    )
    return Cached(access=access, key=token_version_key(digest), version=entry.version)


def forget(digest: str) -> None:
    with _lock:
        _entries.pop(digest, None)


def forget_all() -> None:
    """Drop this process's entries (tests; an operator after editing rows by hand)."""
    with _lock:
        _entries.clear()


def read_version(digest: str) -> str:
    """The token's version (made now if it has none). Raises redis' errors."""
    client = cache.redis_client()
    fresh = secrets.token_hex(16)
    old = client.set(token_version_key(digest), fresh, nx=True, get=True)
    if old is None:
        return fresh
    return old.decode() if isinstance(old, bytes) else old


def admit(
    secret: str, digest: str, *, version: str | None = None, keep: bool = True
) -> TokenAccess | None:
    """authenticate(secret), kept under the token's version: `version` when the caller read
    it before this call, else read here first. Not kept without Redis (or `keep`)."""
    if version is None and keep:
        try:
            version = read_version(digest)
        except RedisError:
            logger.warning("Redis unreachable: the token is checked in the database only")
    access = authenticate(secret)
    if access is None:
        forget(digest)
    elif version is not None:
        _store(digest, access, version)
    return access


def _store(digest: str, access: TokenAccess, version: str) -> None:
    token = access.token
    entry = _Entry(
        version=version,
        role=access.group.role,
        token=_fresh(TOKEN_FIELDS, _values(token, TOKEN_FIELDS)),
        group=_fresh(GROUP_FIELDS, _values(access.group, GROUP_FIELDS)),
        user=_fresh(USER_FIELDS, _values(access.user, USER_FIELDS)),
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
    )
    with _lock:
        _entries[digest] = entry
        _entries.move_to_end(digest)
        while len(_entries) > MAX_TOKENS:
            _entries.popitem(last=False)
