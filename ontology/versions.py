"""A per-group configuration version, shared by every process through Redis.

Processes cache a group's slow-changing configuration (agents, provider keys)
and check this token before using it. Writes bump it when their transaction
commits. The token is random, not a counter: after a Redis restart the key is
missing, a fresh token is made, and every process reloads.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import transaction

_KEY = "config-version:{group_id}"
_TIMEOUT = None  # never expires by itself


def group_version(group_id: int) -> str:
    key = _KEY.format(group_id=group_id)
    token = cache.get(key)
    if token is None:
        cache.add(key, uuid.uuid4().hex, timeout=_TIMEOUT)
        token = cache.get(key)
    return token


def bump_group_version(group_id: int) -> None:
    """Invalidate every process's cached configuration of the group once this commits."""
    key = _KEY.format(group_id=group_id)
    # robust: a Redis hiccup must not turn a committed change into an error page.
    transaction.on_commit(lambda: cache.delete(key), robust=True)
