"""Where a thread's events go: this process's tabs directly, other processes through Redis.

A run streams in the process that received the message, and that is where the
sender's socket is, so most listeners are local. Handing them each event in memory
keeps the channel layer (a few Redis round trips per message) off the per-token
path. Tabs connected to other daphne processes get the events through the channel
layer in small batches, and only while such a tab exists. Every Redis message
names the process it came from, so local tabs skip the copy of what they already got.

While Redis is away, batches for other processes are dropped rather than queued or retried
(their tabs fill the gap from the run log once the stream reaches them again), except a
run's last event, which nothing else would bring: that one is sent patiently.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Protocol

from channels.layers import get_channel_layer

from chat.layers import PATIENCE_SECONDS, UNREACHABLE, Backoff
from ontology.loops import PerLoop

logger = logging.getLogger(__name__)

# How long a look at a thread's group stands. A tab that opens in another process while a
# run streams tells the run at once (chat.runs.RunRegistry.follow); the look again is for
# a tab whose word was lost, and for a yes that no longer holds.
REMOTE_CHECK_SECONDS = 5.0
AWAY_PAUSE_SECONDS = 1.0  # after a failed send, batches are dropped this long


def thread_group(thread_id: int) -> str:
    return f"thread.{thread_id}"


class Listener(Protocol):
    async def deliver(self, event: dict[str, Any]) -> None:
        """Take an event: handle it at once, or queue it (a full inbox drops it: the listener
        resumes). It never waits on anything, the run's stream being the caller."""


class LocalFanout:
    """The listeners of each thread in this process (one registry per event loop)."""

    def __init__(self) -> None:
        self._listeners: dict[int, set[Listener]] = defaultdict(set)

    def add(self, thread_id: int, listener: Listener) -> None:
        self._listeners[thread_id].add(listener)

    def discard(self, thread_id: int, listener: Listener) -> None:
        listeners = self._listeners.get(thread_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[thread_id]

    async def publish(self, thread_id: int, event: dict[str, Any]) -> None:
        for listener in list(self._listeners.get(thread_id, ())):
            await listener.deliver(event)


_fanouts: PerLoop[LocalFanout] = PerLoop(LocalFanout)


def local_fanout() -> LocalFanout:
    return _fanouts.get()


def process_origin(layer=None) -> str | None:
    """This process's name on the channel layer (channels_redis' client prefix)."""
    return getattr(layer or get_channel_layer(), "client_prefix", None)


CLOSE_TRY_AGAIN = 1013  # WebSocket "try again later": Redis stayed away


async def join_groups(layer, channel: str, *groups: str) -> bool:
    """Add a socket's channel to its groups, waiting out a Redis restart (the layer tries
    again for PATIENCE_SECONDS). False when Redis stays away: the consumer should then close
    with CLOSE_TRY_AGAIN, which clients retry, rather than fail with 1011."""
    try:
        for group in groups:
            await layer.group_add(group, channel)
    except UNREACHABLE:
        logger.warning("a socket could not join %s: Redis is unreachable", groups)
        return False
    return True


async def broadcast(thread_id: int, event: dict[str, Any], *, from_worker: bool = False) -> None:
    """A one-off event (a new question, a title): local tabs at once, other processes'
    tabs too when there are any (one look at the group is cheaper than a group send). With
    Redis away, other processes' tabs miss it (they see it on their next load).

    A Celery worker has no tabs of its own (`from_worker`): it sends to every tab through
    the channel layer, naming no origin, so no process takes it for one of its own."""
    if not from_worker:
        await local_fanout().publish(thread_id, event)
    await broadcast_elsewhere(thread_id, [event], everywhere=from_worker)


async def broadcast_elsewhere(
    thread_id: int, events: list[dict[str, Any]], *, everywhere: bool = False
) -> None:
    """`broadcast`'s second half, for events this process's tabs already have: other
    processes' tabs, in one send (see RemotePublisher)."""
    try:
        await RemotePublisher(thread_id, everywhere=everywhere).send(events)
    except UNREACHABLE as error:
        logger.warning("thread %s: %s not sent to other processes (%s)", thread_id, events, error)


class RemotePublisher:
    """Sends a run's events to tabs in other processes, batched, and only when there are any."""

    def __init__(self, thread_id: int, *, everywhere: bool = False) -> None:
        """`everywhere`: for every tab, this process's own too (see `broadcast`)."""
        self.thread_id = thread_id
        self.layer = get_channel_layer()
        self.origin = None if everywhere else process_origin(self.layer)
        self._checked_at = float("-inf")
        self._remote = True
        self._away_until = float("-inf")

    def may_have_listeners(self) -> bool:
        """Whether to queue an event for other processes: as last looked, or yes once that is
        REMOTE_CHECK_SECONDS old (the next `send` looks again) or a tab elsewhere has said it
        joined: a stream with no tab elsewhere queues nothing for one."""
        return self._remote or time.monotonic() - self._checked_at >= REMOTE_CHECK_SECONDS

    def listener_joined(self) -> None:
        """A tab in another process follows the thread now: queue from here on, look again."""
        self._remote = True
        self._checked_at = float("-inf")

    async def send(self, events: list[dict[str, Any]], *, patient: bool = False) -> bool:
        """Send the events to other processes' tabs: False when they were dropped because
        Redis was away moments ago. A failure raises, after trying again for
        PATIENCE_SECONDS when `patient`; the next AWAY_PAUSE_SECONDS of sends are dropped."""
        if not events:
            return True
        if not patient and time.monotonic() < self._away_until:
            return False
        deadline = time.monotonic() + PATIENCE_SECONDS
        backoff = Backoff()
        while True:
            try:
                if await self._has_remote_listeners():
                    await self.layer.group_send(
                        thread_group(self.thread_id),
                        {"type": "run.events", "events": events, "origin": self.origin},
                    )
                self._away_until = float("-inf")
                return True
            except UNREACHABLE:
                self._away_until = time.monotonic() + AWAY_PAUSE_SECONDS
                if not patient or time.monotonic() + backoff.delay > deadline:
                    raise
                await backoff.wait()

    async def _has_remote_listeners(self) -> bool:
        """A yes stands for REMOTE_CHECK_SECONDS; a no is looked at again on every send. A no
        only spares queuing, and an event queued all the same (a run's last) must reach a tab
        that joined since: one whose resume read the log before this look is in the group."""
        now = time.monotonic()
        if not self._remote or now - self._checked_at >= REMOTE_CHECK_SECONDS:
            self._checked_at = now
            self._remote = await self._look()
        return self._remote

    async def _look(self) -> bool:
        """Whether the thread's group has a member channel of another process.

        Reads channels_redis' group set; with any other layer, or if that read fails,
        it answers yes, and publishing to everyone is merely slower.
        """
        try:
            group = thread_group(self.thread_id)
            group_key = self.layer._group_key(group)
            connection = self.layer.connection(self.layer.consistent_hash(group))
            members = await connection.zrange(group_key, 0, -1)
        except Exception:
            logger.debug("cannot list the group's channels; publishing to all", exc_info=True)
            return True
        if self.origin is None:
            return bool(members)
        mine = f"specific.{self.origin}!"
        return any(not member.decode().startswith(mine) for member in members)
