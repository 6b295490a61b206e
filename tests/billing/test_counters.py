"""Rate-limit counters: exact under concurrency, one window at a time, rates parsed strictly."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache

from billing.counters import Claim, acount_and_read, count_and_read, count_hits, parse_rate


@pytest.mark.parametrize(
    ("rate", "parsed"), [("10/m", (10, 60)), ("100/5m", (100, 300)), ("1/d", (1, 86400))]
)
def test_rates_read_like_django_ratelimits(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["10", "ten/m", "10/w", "/m"])
def test_a_bad_rate_is_refused(rate):
    with pytest.raises(ValueError):
        parse_rate(rate)


def test_counters_of_one_call_count_once_each_and_apart(clear_cache):
    first, second = count_hits([("test:a", "2/m"), ("test:b", "5/m")])
    assert (first.count, first.limit, second.count) == (1, 2, 1)
    assert 1 <= first.time_left <= 61
    count_hits([("test:a", "2/m")])
    (third,) = count_hits([("test:a", "2/m")])
    assert (third.count, third.over, third.first_over) == (3, True, True)


def test_parallel_hits_are_counted_exactly(clear_cache):
    with ThreadPoolExecutor(max_workers=16) as pool:
        counts = list(pool.map(lambda _: count_hits([("test:p", "50/m")])[0], range(200)))
    assert sorted(c.count for c in counts) == list(range(1, 201))
    assert sum(not c.over for c in counts) == 50


def test_counting_stops_at_the_first_limit_reached(clear_cache):
    count_hits([("test:user", "1/m"), ("test:group", "10/m")])
    refused = count_hits([("test:user", "1/m"), ("test:group", "10/m")])
    assert [c.count for c in refused] == [2]  # the group's window is not touched
    (group,) = count_hits([("test:group", "10/m")])
    assert group.count == 2


def test_a_claim_is_set_before_counting_and_a_held_one_counts_nothing(clear_cache):
    """The claim's key (a thread's run lock) is set where absent, in the same call; while
    it is held, nothing is counted or read."""
    claim = Claim(cache.make_key("test:lock"), b"run-a", 20)
    taken = count_and_read([("test:c", "5/m")], peek=[cache.make_key("test:peek")], claim=claim)
    assert (taken.claimed, [c.count for c in taken.counts], taken.peeked) == (True, [1], [None])
    assert cache.redis_client().get(claim.key) == b"run-a"
    assert 0 < cache.redis_client().ttl(claim.key) <= 20
    held = count_and_read([("test:c", "5/m")], claim=Claim(claim.key, b"run-b", 20))
    assert (held.claimed, held.counts) == (False, [])
    assert cache.redis_client().get(claim.key) == b"run-a"  # the holder's, untouched
    (count,) = count_hits([("test:c", "5/m")])
    assert count.count == 2  # the refused claim did not count


def test_a_claim_made_for_a_count_over_its_limit_is_let_go(clear_cache):
    count_hits([("test:d", "1/m")])
    claim = Claim(cache.make_key("test:lock-d"), b"run-a", 20)
    over = count_and_read([("test:d", "1/m")], claim=claim)
    assert over.claimed and over.counts[0].over
    assert cache.redis_client().get(claim.key) is None


async def test_the_event_loops_call_claims_counts_and_peeks_the_same_way(clear_cache):
    claim = Claim(cache.make_key("test:lock-e"), b"run-a", 20)
    cache.set("test:peeked", "v1")
    taken = await acount_and_read(
        [("test:e", "5/m")], peek=[cache.make_key("test:peeked")], claim=claim
    )
    assert taken.claimed and [c.count for c in taken.counts] == [1]
    assert taken.peeked[0] is not None
    held = await acount_and_read([("test:e", "5/m")], claim=claim)
    assert not held.claimed
