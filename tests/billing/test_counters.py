"""Rate-limit counters: exact under concurrency, one window at a time, rates parsed strictly."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from billing.counters import count_hits, parse_rate


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
