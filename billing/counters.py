"""Rate-limit counters: fixed windows in Redis, every counter a request touches counted in
one round trip (a small Lua script; django-ratelimit took two per counter, four for a
message's person and group). Redis runs a script atomically, so every process counts
against the same limit, exactly.

    counts = count_hits([("messages:user:7", "10/m"), ("messages:group:3", "60/m")])
    over = [c for c in counts if c.over]
"""

from __future__ import annotations

import re
import secrets
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from django.core.cache import cache

from ontology import async_redis

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"^(\d+)/(\d*)([smhd])$")


@dataclass(frozen=True)
class Count:
    count: int
    limit: int
    time_left: int  # seconds until the window ends

    @property
    def over(self) -> bool:
        return self.count > self.limit

    @property
    def first_over(self) -> bool:
        """The first refusal of its window (audited once, not once per refused request)."""
        return self.count == self.limit + 1


def parse_rate(rate: str) -> tuple[int, int]:
    """`"10/m"` or `"100/5m"`: (how many, per how many seconds)."""
    found = RATE.match(rate.strip())
    if found is None:
        raise ValueError(f"A rate looks like 10/m or 100/5m, not {rate!r}.")
    count, multiple, unit = found.groups()
    return int(count), int(multiple or 1) * UNITS[unit]


# First, with a claim (ARGV[4] its seconds, ARGV[5] its value, KEYS[1] its key), sets that
# key only where it is absent, and when it is not, counts and reads nothing: a caller that
# must hold a lock before it counts (a turn's start, chat.runs) does both in this one trip.
# Then counts each window in order and stops at the first one over its limit, so a request
# the person's own limit refuses never uses up the group's (and a claim made for a refused
# request is let go at once). Then reads the version keys (after the counters in KEYS),
# setting a missing one to the fresh value it is given: callers cache something in their
# process and check its version in this same round trip. Then the keys to peek at (the
# rest of KEYS), as they are (false: missing).
_COUNT = """
local counters, versions, base = tonumber(ARGV[1]), tonumber(ARGV[3]), 0
if ARGV[4] ~= '' then
  base = 1
  if not redis.call('SET', KEYS[1], ARGV[5], 'NX', 'EX', tonumber(ARGV[4])) then
    return {{}, {}, {}, 0}
  end
end
local counts = {}
for i = 1, counters do
  local count = redis.call('INCR', KEYS[base + i])
  if count == 1 then redis.call('EXPIRE', KEYS[base + i], tonumber(ARGV[5 + 2 * i])) end
  counts[i] = count
  if count > tonumber(ARGV[4 + 2 * i]) then
    if base == 1 then redis.call('DEL', KEYS[1]) end
    break
  end
end
local read = {}
for i = base + counters + 1, base + counters + versions do
  local version = redis.call('GET', KEYS[i])
  if not version then
    version = ARGV[2]
    redis.call('SET', KEYS[i], version)
  end
  read[#read + 1] = version
end
local peeked = {}
for i = base + counters + versions + 1, #KEYS do
  peeked[#peeked + 1] = redis.call('GET', KEYS[i])
end
return {counts, read, peeked, 1}
"""
_scripts: dict[int, object] = {}
_async_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Claim:
    """A key to set before counting, only where it is absent (a lock): its full Redis key,
    the value it is set to (bytes as stored), and its lifetime in seconds."""

    key: str
    value: bytes | str
    seconds: int


@dataclass(frozen=True)
class Tally:
    """What one counting call made and read."""

    counts: list[Count]
    versions: list[str]  # of the `versions` keys, in order
    peeked: list[bytes | None] = field(default_factory=list)  # the `peek` keys' raw values
    claimed: bool = True  # False: the claim's key was held, so nothing was counted or read


def count_hits(hits: list[tuple[str, str]]) -> list[Count]:
    """Count one hit on each (name, rate) in its current window, in order, up to the first
    that is over its limit; the counts made (the last is the one over, if any)."""
    return count_and_read(hits).counts


def count_and_read(
    hits: list[tuple[str, str]],
    versions: Sequence[str] = (),
    peek: Sequence[str] = (),
    claim: Claim | None = None,
) -> Tally:
    """count_hits, and in the same round trip the values of the `versions` keys (full Redis
    keys; a missing one is set to a fresh random value, so a version, once read, changes only
    when someone deletes it) and of the `peek` keys (full keys, read as they are). Raises
    redis' errors when Redis cannot be reached."""
    client = cache.redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts.setdefault(id(client), client.register_script(_COUNT))
    now, keys, arguments, ends = _call(hits, versions, peek, claim)
    return _answer(now, ends, script(keys=keys, args=arguments))


async def acount_and_read(
    hits: list[tuple[str, str]],
    versions: Sequence[str] = (),
    peek: Sequence[str] = (),
    claim: Claim | None = None,
) -> Tally:
    """count_and_read from the event loop (ontology.async_redis), without blocking it; with
    a `claim`, its key is set first where absent, and when it is held nothing is counted
    (`Tally.claimed` False), and a count over its limit lets it go again."""
    client = async_redis.client()
    script = _async_scripts.get(client)
    if script is None:
        script = _async_scripts.setdefault(client, client.register_script(_COUNT))
    now, keys, arguments, ends = _call(hits, versions, peek, claim)
    answer = await script(keys=keys, args=arguments, client=async_redis.batched())
    return _answer(now, ends, answer)


def _call(
    hits: list[tuple[str, str]],
    versions: Sequence[str],
    peek: Sequence[str],
    claim: Claim | None = None,
) -> tuple:
    now = time.time()
    keys, ends = [], []
    arguments = [len(hits), secrets.token_hex(16), len(versions), "", ""]
    if claim is not None:
        keys.append(claim.key)
        arguments[3:5] = [claim.seconds, claim.value]
    for name, rate in hits:
        limit, period = parse_rate(rate)
        start = int(now // period) * period
        keys.append(cache.make_key(f"rl:{quote(name, safe=':@.-_')}:{start}"))
        arguments += [limit, period + 1]
        ends.append((limit, start + period))
    return now, [*keys, *versions, *peek], arguments, ends


def _answer(now: float, ends: list, answer: list) -> Tally:
    counts, read, peeked, claimed = answer
    return Tally(
        counts=[
            Count(count=int(count), limit=limit, time_left=max(1, int(end - now) + 1))
            for count, (limit, end) in zip(counts, ends, strict=False)
        ],
        versions=[value.decode() if isinstance(value, bytes) else value for value in read],
        peeked=list(peeked),
        claimed=bool(claimed),
    )
