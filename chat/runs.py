"""Runs owned by the process, not by a socket.

A run's events go live to the thread's channel-layer group (every open tab) and,
in batches, to the durable RunEvent log a reconnecting client resumes from. One
run per thread at a time, across processes: a lock in Redis, kept alive by a
heartbeat that also refreshes the answer's row; its value names the run and the
control channel of the process holding it, so a stop from any process goes straight
there. A process that dies leaves rows whose heartbeat stops; the sweep marks them
interrupted with their partial text.

Redis may restart and forget everything (docs/operations.md, "Faults"). The answer's row
in PostgreSQL is the lock's durable half: a thread whose answer is streaming with a fresh
heartbeat is busy whatever Redis says. Each process watches the Redis server's run id;
when it changes, the process sets its runs' locks again (same values, so stops find them)
and rejoins its sockets' groups, and each heartbeat sets a lost lock again too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from agents.configuration import cached_configuration
from agents.engine import AgentRun
from agents.engine.events import RunFailed, wire
from agents.engine.interrupted import LostRun, meter_interrupted_run
from billing.counters import Claim
from chat.conversation import ThreadConversation
from chat.fanout import RemotePublisher, broadcast_elsewhere, local_fanout
from chat.layers import UNREACHABLE
from chat.models import AIThread, Message, RunEvent
from chat.runlog import FLUSH_EVENTS, close_run_log, run_log, write_rows
from chat.titles import name_thread, title_later
from ontology import async_redis
from ontology.db_async import TogetherOnOneTrip, db_call, io_call
from ontology.errors import ErrorCode, sentence_for
from ontology.events import EventType
from ontology.loops import PerLoop
from ontology.models import Group, User
from ontology.scoping import group_scope, scopes_disabled
from ontology.services import event_record

logger = logging.getLogger(__name__)

# Turns starting in the same turn of the event loop (a burst of sends) make their start's
# trip to a database thread together, each in its own tenant scope.
_starting = TogetherOnOneTrip()

FINAL_EVENTS = frozenset({"run.completed", "run.stopped", "error"})
# A first answer that ends so gets the thread a title; one that failed leaves it for the next.
TITLED_ENDINGS = frozenset({Message.Status.COMPLETE, Message.Status.STOPPED})
LOCK_SECONDS = 20  # a dead process's lock on a thread with no answer row yet lasts this long
HEARTBEAT_SECONDS = 5  # the lock is set again at least this often after Redis lost it
PULSE_SECONDS = 3  # each process refreshes its answers' rows (the heartbeat) this often
WATCH_SECONDS = 1.0  # how often a process asks whether Redis is a new server
STOP_WAIT_SECONDS = HEARTBEAT_SECONDS + 1.0  # how long a stop waits for a lost lock to return
CONTROL_RETRY_SECONDS = 1.0
STALE_AFTER = timedelta(seconds=12)  # an answer whose heartbeat is older died with its process
SWEEP_SECONDS = 4
CLOSE = "registry.close"
UNREAD = object()  # follow(): the caller has not read the answer's row
_SERIALIZER = RedisSerializer()  # how Django's Redis cache stores a value


def _lock_key(thread_id: int) -> str:
    return f"run-lock:{thread_id}"


def _lock_holder(thread_id: int) -> tuple[str, str] | None:
    """(run id, the holding process's control channel) of the thread's run, if one streams."""
    return _holder_of(cache.get(_lock_key(thread_id)))


async def _alock_holder(thread_id: int) -> tuple[str, str] | None:
    """_lock_holder from the event loop (ontology.async_redis): no trip to a thread."""
    raw = await async_redis.batched().get(cache.make_key(_lock_key(thread_id)))
    return _holder_of(_SERIALIZER.loads(raw) if raw is not None else None)


def _holder_of(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return None
    run_id, _, channel = value.partition(" ")
    return run_id, channel


# Keep a run's lock, in one command: refresh it while it holds this run's value, set it
# again when Redis lost it, and answer 0 when another run holds the thread now.
_KEEP = """
local held = redis.call('get', KEYS[1])
if not held then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
if held == ARGV[1] then redis.call('expire', KEYS[1], ARGV[2]) return 1 end
return 0
"""


async def _akeep_lock(thread_id: int, lock: str) -> bool:
    """Keep the run's lock from the event loop, in one command (no trip to a thread): True
    while it is this run's, set again if Redis lost it; False when another run holds it."""
    key = cache.make_key(_lock_key(thread_id))
    kept = await async_redis.batched().eval(_KEEP, 1, key, _SERIALIZER.dumps(lock), LOCK_SECONDS)
    return bool(kept)


def heartbeat_cutoff() -> datetime:
    """An answer streaming with a heartbeat older than this died with its process."""
    return timezone.now() - STALE_AFTER


def _streaming_runs(thread: int | OuterRef) -> QuerySet:
    """The run ids of answers streaming on the thread with a live heartbeat (unscoped: call
    it under scopes_disabled). chat/socket_open.py reads the same in SQL."""
    return Message.objects.filter(
        thread_id=thread, status=Message.Status.STREAMING, updated_at__gte=heartbeat_cutoff()
    ).values_list("run_id", flat=True)


def streaming_run(thread_id: int) -> str | None:
    """The run whose answer streams on the thread with a live heartbeat: the lock's durable
    half, which holds while Redis has lost the lock. By thread id alone, as the lock is:
    its callers have checked who may see the thread."""
    with scopes_disabled():
        run_id = _streaming_runs(thread_id).first()
    return str(run_id) if run_id is not None else None


def _still_streaming(thread_id: int, conversation: ThreadConversation | None) -> bool:
    """Whether an answer streams on the thread with a live heartbeat (streaming_run); from
    the thread's messages when the turn reads them anyway (ThreadConversation.read)."""
    if conversation is None:
        return streaming_run(thread_id) is not None
    cutoff = heartbeat_cutoff()
    return any(
        m.status == Message.Status.STREAMING and m.updated_at >= cutoff for m in conversation.read()
    )


def streaming_run_column() -> Subquery:
    """streaming_run as a column of a query over threads (the run id, or None), for a
    caller that reads the thread anyway: a socket's open reads both in one query."""
    with scopes_disabled():
        return Subquery(_streaming_runs(OuterRef("pk"))[:1])


def active_run_id(thread_id: int) -> str | None:
    """The run streaming on the thread now, in whichever process holds it."""
    holder = _lock_holder(thread_id)
    return holder[0] if holder else None


class _TitleOnFinish:
    """Queues an untitled thread's naming for a worker (chat/titles.py) on the database
    thread that has just saved its answer, finished or stopped: the same trip, not one of
    its own after it (a trip costs a pool thread's wake-up, some of the event loop's time
    for every turn). `titles_here`: the answer wants a title that was not queued (titles
    made in the web process, or the broker refused the task): the run's driver makes it."""

    def __init__(self, *, group, thread: AIThread, user) -> None:
        self.group, self.thread, self.user = group, thread, user
        self.titles_here = False

    def __call__(self, status: str) -> None:
        if status not in TITLED_ENDINGS or self.thread.title:
            return
        self.titles_here = True
        if not settings.PARLEY_TITLES_ON_WORKER:
            return
        try:
            title_later(group=self.group, thread=self.thread, user=self.user)
        except Exception:  # the answer is saved all the same; the driver titles it here
            logger.warning("thread %s: titled here, the broker refused the task", self.thread.pk)
        else:
            self.titles_here = False


class Busy(Exception):
    """The thread already has a run streaming."""


class EventLog:
    """The run's sink: each event to this process's tabs at once, to the durable log, and to
    other processes' tabs (while there are any) in batches, once the log holds them: if
    this process dies, what any tab elsewhere was shown is what the log keeps, and the
    answer the sweep saves is exactly that text.

    `before_final` runs once the final event is in the log and before anyone hears it: the
    run lets go of its thread there, so a tab that sends again at once is not told "busy".
    """

    def __init__(
        self,
        *,
        group: Group,
        thread: AIThread,
        before_final: Callable[[], Awaitable[None]],
    ) -> None:
        self.group = group
        self.thread = thread
        self.before_final = before_final
        self.remote = RemotePublisher(thread.pk)
        self.log = run_log()
        # Read once, not for every event (a model's pk and the per-loop lookups show per frame).
        self._group_id, self._thread_id = group.pk, thread.pk
        self._fanout = local_fanout()
        self._unwritten = 0
        self._outbox: list[dict[str, Any]] = []
        self._publisher: asyncio.Task | None = None
        # One send to other processes at a time, in the order their events were taken: the
        # run's end, published at once, must not overtake a batch still on its way.
        self._sending = asyncio.Lock()

    async def emit(self, event: dict[str, Any]) -> None:
        self.log.add(group_id=self._group_id, thread_id=self._thread_id, event=event)
        if event["type"] in FINAL_EVENTS:
            # The log is complete before anyone hears the run ended: a client that
            # resumes after the final event finds everything.
            self._unwritten = 0
            try:
                await self.log.sync()
            except Exception:  # the log writes it later; the tabs must hear the end now
                logger.exception("run %s: its log is behind as it ends", event["run_id"])
            try:
                await self.before_final()
            except Exception:  # Redis is away: the lock expires by itself (LOCK_SECONDS)
                logger.exception("run %s could not let go of its thread", event["run_id"])
            await self._fanout.publish(self._thread_id, event)
            self._outbox.append(event)
            await self.publish(patient=True)
            return
        self._unwritten += 1
        if self._unwritten >= FLUSH_EVENTS:
            self._unwritten = 0
            self.log.write_soon()
        await self._fanout.publish(self._thread_id, event)
        if not self.remote.may_have_listeners():
            return  # no tab elsewhere; one that opens later reads what it missed from the log
        self._outbox.append(event)
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._publish_when_logged())

    def listener_joined(self) -> None:
        """A tab in another process resumed this run: publish to it from the next event on."""
        self.remote.listener_joined()

    async def _publish_when_logged(self) -> None:
        """Publish the outbox as far as the log holds it (at the log writer's tick, at most
        chat.runlog.FLUSH_SECONDS), until it is empty. With the database away, the events
        go out all the same: tabs elsewhere keep streaming."""
        try:
            while self._outbox:
                ready = len(self._outbox)
                try:
                    await self.log.flushed()
                except Exception:
                    logger.warning("run log behind: publishing what it does not hold yet")
                events, self._outbox = self._outbox[:ready], self._outbox[ready:]
                await self._send(events)
        finally:
            self._publisher = None

    async def publish(self, *, patient: bool = False) -> None:
        """Send the whole outbox to other processes now (the log holds it: the run ended)."""
        events, self._outbox = self._outbox, []
        await self._send(events, patient=patient)

    async def _send(self, events: list[dict[str, Any]], *, patient: bool = False) -> None:
        """To other processes (see RemotePublisher.send), after any batch taken before
        these; never raises."""
        if not events:
            return
        try:
            async with self._sending:
                await self.remote.send(events, patient=patient)
        except UNREACHABLE as error:  # the other processes' tabs read them from the log
            logger.warning("could not publish %d events to other processes: %s", len(events), error)
        except Exception:
            logger.exception("could not publish %d events to other processes", len(events))

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        with contextlib.suppress(Exception):  # the database is away: publish all the same
            await self.log.sync()
        await self.publish(patient=True)


class RunRegistry:
    """The runs of this process (one registry per event loop)."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.runs: dict[int, AgentRun] = {}
        self._starting: dict[int, AgentRun] = {}  # on their start's trip (their lock taken)
        self._tasks: set[asyncio.Task] = set()
        self._control_channel: str | None = None
        self._control_task: asyncio.Task | None = None
        self.swept = asyncio.Event()  # set once this process's first sweep has run
        self._closing = asyncio.Event()

    async def start(
        self,
        *,
        group: Group,
        thread: AIThread,
        user: User,
        admit: Callable[[Claim], str | None],
        before: Callable[[], Any] | None = None,
        conversation: ThreadConversation | None = None,
        notices: Callable[[Any], list[dict[str, Any]]] | None = None,
    ) -> tuple[uuid.UUID, Any]:
        """Start a run on the thread, in one trip to a database thread (shared with the
        turns starting in the same turn of the event loop: `_starting`). There, `admit`
        takes the thread's lock (the Claim given) in the same Redis round trip as the
        message's rate limit (billing.ratelimits.message_counted), and answers the group's
        configuration version it read there: it raises Busy when the lock is held (nothing
        counted), or to refuse (e.g. RateLimited, the lock let go). Then, on the same trip,
        the look for an answer still streaming (the lock's durable half), `before` (e.g.
        saving the question; its result is returned) and the run's own set-up (its agent,
        from this process's copy when that version says it is current, and the history it
        sends). `conversation`: the thread's, when `before` asks a question
        (ThreadConversation.ask): the thread's messages are then read once, for both the
        look for an answer still streaming and where the question goes.

        The admission was made from the event loop before the trip, until a probe at 200
        streams showed its Redis round trip there taking 10-12 ms at p50 and 66-99 ms at
        p95 of a start (the last third of the ramp): each of its turns of the loop waited
        behind every stream's deltas. On the thread it is one blocking round trip.

        Once started, `notices` (given what `before` returned: e.g. the new question's
        `message.created`) go to this process's tabs, then `run.started`, in the turn of the
        event loop the trip came back in; then the notices go to other processes' tabs. The
        run's task sent `run.started` a turn later: at 200 streams, 3.6-3.8 ms at p50 and
        13-16 ms at p95 of a start's time, a wait behind every stream's deltas.

        Raises Busy when another run holds the thread, in this process or another.
        """
        await self._listen()
        run_id = uuid.uuid4()
        lock = self._lock_value(run_id)
        claim = Claim(cache.make_key(_lock_key(thread.pk)), _SERIALIZER.dumps(lock), LOCK_SECONDS)
        sink = EventLog(
            group=group, thread=thread, before_final=lambda: self._let_go(run, thread.pk)
        )
        conversation = conversation or ThreadConversation(group=group, thread=thread)
        title = _TitleOnFinish(group=group, thread=thread, user=user)
        conversation.after_finish = title
        run = AgentRun(group=group, conversation=conversation, user=user, sink=sink, run_id=run_id)

        def prepare() -> Any:
            version = admit(claim)
            if _still_streaming(thread.pk, conversation):
                raise Busy  # Redis lost the lock of a run that still streams
            # the question's rows and the answer's go in one statement, at the block's end
            with conversation.writes_together():
                prepared = before() if before else None
                # the agent, the history and the answer's row, on this same trip (the
                # question is in): from here the row holds the thread too (the lock's
                # durable half)
                # this process's copy, when the version read with the lock says it is
                # current; else the set-up reads the group's version and configuration
                configuration = cached_configuration(group.pk, version) if version else None
                run.prepare_now(place_answer=True, configuration=configuration)
            return prepared

        self._starting[thread.pk] = run
        try:
            prepared = await _starting(prepare)
        except BaseException:  # refused (busy, the text) or failed: the thread is free again
            # (only if the lock is this run's: a thread refused as busy keeps its run's)
            with contextlib.suppress(Exception):  # Redis is away: it expires (LOCK_SECONDS)
                await _arelease_lock(thread.pk, lock)
            raise
        finally:
            if self._starting.get(thread.pk) is run:
                del self._starting[thread.pk]
        self.runs[thread.pk] = run
        task = asyncio.create_task(self._drive(run, thread, title))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        events = notices(prepared) if notices else []
        fanout = local_fanout()
        for event in events:
            await fanout.publish(thread.pk, event)
        await run.announce()
        if events:
            await broadcast_elsewhere(thread.pk, events)
        return run.run_id, prepared

    async def request_stop(self, thread_id: int, run_id: uuid.UUID | None = None) -> bool:
        """Stop the thread's run (only if it is `run_id`, when given) wherever it lives; it
        ends within one stream step. False when no such run streams."""
        run = self.runs.get(thread_id)
        if run is not None and (run_id is None or run.run_id == run_id):
            run.stop()
            return True
        holder = await io_call(_lock_holder)(thread_id)
        if holder is None:
            holder = await self._lost_holder(thread_id)
        if holder is None or not holder[1]:
            return False  # nothing streams on the thread
        holder_run, channel = holder
        if run_id is not None and holder_run != str(run_id):
            return False
        if channel == self._control_channel:
            return False  # this process's run of the thread has just ended
        await self.layer.send(
            channel, {"type": "run.stop", "thread_id": thread_id, "run_id": holder_run}
        )
        return True

    async def _lost_holder(self, thread_id: int) -> tuple[str, str] | None:
        """The holder of a lock Redis lost while its answer still streams: its process sets it
        again within WATCH_SECONDS of noticing the new server, so wait for it a little."""
        if await db_call(streaming_run)(thread_id) is None:
            return None
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling Redis for the lock, with a deadline
            holder = await io_call(_lock_holder)(thread_id)
            if holder is not None:
                return holder
        logger.warning("thread %s: its run's lock was not set again; the stop is lost", thread_id)
        return None

    def heard_from_the_start(self, thread_id: int, run_id: str) -> bool:
        """Whether the thread's run `run_id` is this process's and has sent nothing yet
        (starting, or started): a tab in this process's fanout hears it from `seq` 1."""
        run = self.runs.get(thread_id) or self._starting.get(thread_id)
        return run is not None and str(run.run_id) == str(run_id) and run.silent

    async def follow(self, thread_id: int, *, stored: object = UNREAD) -> str | None:
        """The run streaming on the thread now, if any. When it streams in another process,
        that process hears that a tab here follows it, and publishes to this process from
        its next event on rather than from its next look (REMOTE_CHECK_SECONDS). When Redis
        has lost the run's lock, the answer's row still names the run: `stored`, when the
        caller has just read it (streaming_run), spares reading it again."""
        holder = await _alock_holder(thread_id)
        if holder is None:
            if stored is not UNREAD:
                return stored
            return await db_call(streaming_run)(thread_id)
        run_id, channel = holder
        if channel and channel != self._control_channel:
            try:
                listen = {"type": "run.listen", "thread_id": thread_id, "run_id": run_id}
                await getattr(self.layer, "send_now", self.layer.send)(channel, listen)
            except Exception:  # the run still reaches this tab, from its process's next look
                logger.exception("could not tell run %s that a tab follows it", run_id)
        return run_id

    async def _drive(self, run: AgentRun, thread: AIThread, title: _TitleOnFinish) -> None:
        ended = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(run, thread.pk, ended))
        try:
            await run.execute()
        except Exception:
            logger.exception("run %s failed outside the agent loop", run.run_id)
            with contextlib.suppress(Exception):
                await run.fail()
        finally:
            ended.set()
            await heartbeat
            try:
                await run.sink.close()
            except Exception:  # the log is away: the run still lets go of the thread
                logger.exception("run %s: its last events could not be written", run.run_id)
            await self._let_go(run, thread.pk)  # a no-op once the final event did it
        if title.titles_here:  # else not wanted, or queued with the answer
            await self._name_thread(run, thread)

    async def _name_thread(self, run: AgentRun, thread: AIThread) -> None:
        """Title an untitled thread after its first answer, finished or stopped (the question
        is worth a name either way), here: when titles are not made on a worker, or the
        broker would not take the task queued with the answer (_TitleOnFinish)."""
        await name_thread(group=run.group, thread=thread, user=run.user)

    async def _heartbeat(self, run: AgentRun, thread_id: int, ended: asyncio.Event) -> None:
        """Keep the run's lock in Redis (its answer's row is kept fresh by the pulse)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), HEARTBEAT_SECONDS)
            if ended.is_set():
                return
            try:
                await self._keep_lock(run, thread_id)
            except Exception:
                logger.exception("run %s: its lock could not be kept; it tries again", run.run_id)

    async def _keep_lock(self, run: AgentRun, thread_id: int) -> None:
        """Refresh the run's lock, or set it again with the same value when Redis lost it.

        Another run holds the thread only if this one's heartbeat was silent for LOCK_SECONDS
        (the database was away too) and it was taken for dead: the newer run keeps the
        thread and this one stops, its text kept, so two answers never stream at once.
        """
        if self.runs.get(thread_id) is not run:
            return  # it let go of the thread as it ended
        if not await _akeep_lock(thread_id, self._lock_value(run.run_id)):
            logger.warning("run %s: another run took its thread; stopping it", run.run_id)
            run.stop()

    async def _let_go(self, run: AgentRun, thread_id: int) -> None:
        """The run no longer holds its thread: stops for the thread stop reaching it, and the
        lock is free (in that order: nothing else can start on the thread before this ends)."""
        if self.runs.get(thread_id) is not run:
            return
        del self.runs[thread_id]
        await _arelease_lock(thread_id, self._lock_value(run.run_id))

    def _lock_value(self, run_id: uuid.UUID) -> str:
        """What the run's thread lock holds: the run, and where to send it a stop."""
        return f"{run_id} {self._control_channel}"

    async def ensure_running(self) -> None:
        """Start this process's stop listener and interrupted-run sweep (idempotent)."""
        await self._listen()

    async def _listen(self) -> None:
        if self._control_channel is not None:
            return
        # The default "specific" prefix: channels_redis reads all of a process's channels through
        # one shared key, and a channel with another prefix would starve the consumers' ones.
        self._control_channel = await self.layer.new_channel()
        self._control_task = asyncio.create_task(self._control_loop())
        sweep = asyncio.create_task(self._sweep_loop())
        watch = asyncio.create_task(self._watch_loop())
        pulse = asyncio.create_task(self._pulse_loop())
        for task in (self._control_task, sweep, watch, pulse):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop this process's runs, sweep and stop listener, and wait for them to end.

        Nothing is cancelled: a cancelled task can leave its database work running in a
        worker thread, and a cancellation that lands inside the channel layer's blocking
        read can be lost (redis-py's read timeout races it). Runs are stopped (their
        partial answers saved, metered), the sweep finishes its pass and the listener is
        woken by a message.
        """
        self._closing.set()
        for run in list(self.runs.values()):
            run.stop()
        if self._control_channel is not None:
            try:
                await self.layer.send(self._control_channel, {"type": CLOSE})
            except Exception:  # Redis is away: nothing else can wake the listener
                logger.exception("could not wake the stop listener; cancelling it")
                if self._control_task is not None:
                    self._control_task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await close_run_log()
        self._control_channel = self._control_task = None

    async def _control_loop(self) -> None:
        """Stops and listen hints from other processes, until the registry closes. It
        outlives any error: the channel layer's read waits out a Redis restart, and
        anything else is logged and read again after a pause. Its channel is only a name
        (nothing of it lives in Redis), so the locks that name it stay right."""
        while True:
            try:
                message = await self.layer.receive(self._control_channel)
            except Exception:
                logger.exception("the stop listener could not read; it reads again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), CONTROL_RETRY_SECONDS)
                continue
            if message.get("type") == CLOSE:
                return
            run = self.runs.get(message.get("thread_id"))
            if run is None or str(run.run_id) != message.get("run_id"):
                continue
            if message.get("type") == "run.stop":
                run.stop()
            elif message.get("type") == "run.listen":
                run.sink.listener_joined()

    async def _watch_loop(self) -> None:
        """Notice a new Redis server (restarted, its data possibly lost) and put back what
        this process keeps there: its runs' locks and its sockets' group memberships."""
        server_id = getattr(self.layer, "server_id", None)
        known: str | None = None
        while server_id is not None and not self._closing.is_set():
            try:
                server = await server_id()
                if known is not None and server != known:
                    await self._after_new_server()
                known = server
            except Exception:
                logger.debug("cannot ask Redis for its run id; asking again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), WATCH_SECONDS)

    async def _after_new_server(self) -> None:
        logger.warning("Redis is a new server: setting %d run locks again", len(self.runs))
        for thread_id, run in list(self.runs.items()):
            await self._keep_lock(run, thread_id)
        rejoin = getattr(self.layer, "rejoin_groups", None)
        if rejoin is not None:
            await rejoin()

    async def _pulse_loop(self) -> None:
        """The heartbeat of this process's answers: one statement refreshes every streaming
        answer's row, so an answer whose process died is known within STALE_AFTER."""
        while not self._closing.is_set():
            ids = [run.message_id for run in self.runs.values()]
            if ids:
                try:
                    await db_call(_touch_messages)(ids)
                except Exception:
                    logger.exception("the answers' heartbeat failed; it beats again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), PULSE_SECONDS)

    async def _sweep_loop(self) -> None:
        while not self._closing.is_set():
            try:
                ended = await db_call(mark_interrupted_runs)()
            except Exception:
                logger.exception("the interrupted-run sweep failed; it runs again later")
                ended = []
            for thread_id, event in ended:  # every tab, in every process, hears the end
                try:
                    await local_fanout().publish(thread_id, event)
                    await RemotePublisher(thread_id).send([event], patient=True)
                except Exception:  # a tab reads it from the log when it resumes
                    logger.exception("could not tell thread %s its run was interrupted", thread_id)
            self.swept.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), SWEEP_SECONDS)


# Delete the key only while it holds the value given: the lock is this run's.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


async def _arelease_lock(thread_id: int, lock: str) -> None:
    """Let go of the thread's lock if it is still this run's, from the event loop, in one
    command: no trip to a thread."""
    key = cache.make_key(_lock_key(thread_id))
    await async_redis.batched().eval(_RELEASE, 1, key, _SERIALIZER.dumps(lock))


def _touch_messages(message_ids: list[uuid.UUID]) -> None:
    """This process's own answers, whatever their groups (ids it holds, not from a request)."""
    with scopes_disabled():
        Message.objects.filter(pk__in=message_ids, status=Message.Status.STREAMING).update(
            updated_at=timezone.now()
        )


_registries: PerLoop[RunRegistry] = PerLoop(RunRegistry)


class StartRunsOnFirstRequest:
    """ASGI wrapper: a process's first request of any kind starts its stop listener and sweep.

    daphne sends no lifespan events, and after a restart the first request is usually a
    health check, well before anyone reconnects a chat.
    """

    def __init__(self, app) -> None:
        self.app = app
        self._started: weakref.WeakSet = weakref.WeakSet()

    async def __call__(self, scope, receive, send):
        loop = asyncio.get_running_loop()
        if loop not in self._started:
            self._started.add(loop)
            await registry().ensure_running()
        return await self.app(scope, receive, send)


def registry() -> RunRegistry:
    return _registries.get()


async def close_registry() -> None:
    """End this event loop's runs and listeners (an orderly shutdown; tests between loops)."""
    run_registry = _registries.pop()
    if run_registry is not None:
        await run_registry.close()


def mark_interrupted_runs(*, stale_after: timedelta = STALE_AFTER) -> list[tuple[int, dict]]:
    """Platform job: answers whose run died with its process (no heartbeat for
    `stale_after`) become "interrupted", keeping the text the log holds (what every tab
    elsewhere was shown). Each run's log gets a final `error {code: "interrupted"}`, its
    call in flight is metered as estimated and its budget holds are released, and its
    thread is free. (thread id, final event) of each, for the caller to tell the tabs."""
    cutoff = timezone.now() - stale_after
    ended = []
    with scopes_disabled():
        stale = list(
            Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
            .select_related("group", "thread")
            .only("pk", "group", "thread_id", "thread__agent_id", "thread__user_id", "run_id")
        )
    for message in stale:
        with group_scope(message.group), transaction.atomic():
            events = list(RunEvent.objects.filter(run_id=message.run_id).order_by("seq"))
            text = "".join(e.payload.get("text", "") for e in events if e.type == "delta")
            updated = Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(
                status=Message.Status.INTERRUPTED,
                content=text,
                error_code=ErrorCode.INTERRUPTED,
                updated_at=timezone.now(),
            )
            if not updated:
                continue  # another process swept it first
            event_record(
                group=message.group,
                type=EventType.ANSWER_INTERRUPTED,
                target=message,
                metadata={"thread_id": message.thread_id, "run_id": str(message.run_id)},
            )
            final = wire(
                RunFailed(
                    code=str(ErrorCode.INTERRUPTED),
                    message=sentence_for(ErrorCode.INTERRUPTED),
                    message_id=str(message.pk),
                ),
                run_id=str(message.run_id),
                seq=(events[-1].seq if events else 0) + 1,
            )
            write_rows([_log_row(message, final)])
            meter_interrupted_run(_lost_run(message, text))
        ended.append((message.thread_id, final))
        with contextlib.suppress(*UNREACHABLE):  # Redis is away: the lock expires by itself
            _release_dead_lock(message.thread_id, str(message.run_id))
    return ended


def _release_dead_lock(thread_id: int, run_id: str) -> None:
    """Free the thread of a dead run, unless a newer run holds it already."""
    holder = _lock_holder(thread_id)
    if holder is not None and holder[0] == run_id:
        cache.delete(_lock_key(thread_id))


def _log_row(message: Message, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "group_id": message.group_id,
        "thread_id": message.thread_id,
        "run_id": event["run_id"],
        "seq": event["seq"],
        "type": event["type"],
        "payload": event,
    }


def _lost_run(message: Message, streamed: str) -> LostRun:
    """What the dead run had read and written, for the estimate of its call in flight."""
    history = list(
        Message.objects.filter(
            thread_id=message.thread_id,
            status__in=[Message.Status.COMPLETE, Message.Status.STOPPED],
            created_at__lte=message.created_at,
        )
        .exclude(content="")
        .values_list("content", flat=True)
    )
    return LostRun(
        group=message.group,
        run_id=message.run_id,
        thread_id=message.thread_id,
        agent_id=message.thread.agent_id,
        user_id=message.thread.user_id,
        history=history,
        streamed=streamed,
    )
