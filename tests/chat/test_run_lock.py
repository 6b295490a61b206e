"""A run's thread lock in Redis, kept from the event loop in one command (chat.runs)."""

import pytest
from django.core.cache import cache

from billing.counters import Claim, count_and_read
from chat.runs import _SERIALIZER, LOCK_SECONDS, _akeep_lock, _lock_key

pytestmark = pytest.mark.usefixtures("clear_cache")
THREAD = 424242


def claim_lock(thread_id: int, lock: str) -> bool:
    """Take a thread's run lock as a turn's start does (RunRegistry.start: a Claim in the
    rate limit's script, here with no counters): True when it was free."""
    key = cache.make_key(_lock_key(thread_id))
    return count_and_read([], claim=Claim(key, _SERIALIZER.dumps(lock), LOCK_SECONDS)).claimed


async def test_keeping_a_held_lock_refreshes_it():
    assert claim_lock(THREAD, "run-a chan")
    cache.touch(_lock_key(THREAD), 3)
    assert await _akeep_lock(THREAD, "run-a chan")
    assert cache.get(_lock_key(THREAD)) == "run-a chan"
    ttl = cache._cache.get_client(write=False).ttl(cache.make_key(_lock_key(THREAD)))
    assert 3 < ttl <= LOCK_SECONDS


async def test_a_lock_redis_lost_is_set_again_with_the_same_value():
    assert await _akeep_lock(THREAD, "run-a chan")
    assert cache.get(_lock_key(THREAD)) == "run-a chan"  # as _lock_holder reads it
    assert not claim_lock(THREAD, "run-b chan")


async def test_a_lock_another_run_holds_is_left_alone():
    assert claim_lock(THREAD, "run-b chan")
    assert not await _akeep_lock(THREAD, "run-a chan")
    assert cache.get(_lock_key(THREAD)) == "run-b chan"
