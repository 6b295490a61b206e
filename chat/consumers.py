"""The chat WebSocket: /ws/threads/<thread_id>/ (protocol in docs/protocol.md).

Thin: it checks who is asking, validates frames, calls services and the run
registry, and forwards run events. Runs belong to the process, so closing the
socket never stops one; a client that reconnects resumes from the durable log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import Any

from channels.auth import UserLazyObject, get_user
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.utils.functional import empty

from billing.ratelimits import RateLimited
from chat import selectors, turns
from chat.fanout import (
    CLOSE_TRY_AGAIN,
    join_groups,
    local_fanout,
    process_origin,
    thread_group,
)
from chat.frames import (
    EditMessage,
    ErrorFrame,
    FrameError,
    Regenerate,
    Resume,
    RunActive,
    SendMessage,
    StopRun,
    StreamResumed,
    SwitchBranch,
    parse_frame,
    to_wire,
)
from chat.layers import UNREACHABLE
from chat.models import Message
from chat.runs import FINAL_EVENTS, Busy, heartbeat_cutoff, registry, streaming_run_column
from chat.socket_open import model_backend_user_id, opened, read_for_sessions
from config.sessions import load_together
from ontology.db_async import ManyOnOneTrip, db_call
from ontology.errors import ErrorCode, sentence_for
from ontology.models import ApiToken
from ontology.tokens import TokenAccess, still_valid, token_channel_group
from ontology.turn_batches import Failed

logger = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_FOUND = 4404
GAP_WAITS = 6  # the log is at most one flush (250 ms) behind the live stream
GAP_WAIT_SECONDS = 0.1
INBOX_SIZE = 2000  # events waiting for this socket; beyond, they are read back from the log
RESUME_BURST = 10  # each resume may replay a whole run from the database: bounded per socket
RESUME_RATE = 0.5  # resumes a second once the burst is spent
# Every frame's JSON (non-ASCII text as it is): one encoder, where json.dumps with an option
# builds one per call, twice the cost of the encoding itself for a small frame.
_JSON = json.JSONEncoder(ensure_ascii=False)
# Frames only the thread's author may send.
WRITES = (SendMessage, Regenerate, EditMessage, SwitchBranch, StopRun)


class TokenBucket:
    """`capacity` actions at once, then `per_second`; in memory, as it is one socket's."""

    def __init__(self, *, capacity: int, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = float(capacity)
        self.at = time.monotonic()

    def take(self) -> int:
        """Take one token: 0 when granted, else whole seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.per_second))


def _who_and_where_together(opens: list[tuple[dict[str, Any], int]]) -> list[Any]:
    """For each (scope, thread_id) of sockets opening together: the socket's user; if they
    may read it, the thread (with its group); and the run whose answer is streaming on it
    as its row says (chat.runs.streaming_run), or `Failed` with a socket's own error. On
    one trip to a database thread (`_opening`).

    A browser's user comes from its session here, not in the middleware
    (config.websocket_auth.BrowserSession): the sessions are read with one cache read
    (config.sessions.load_together), then every user with their thread in one statement
    (chat.socket_open). A token's user is already known (config.websocket_auth), and a
    user signed in by another configured backend is read as channels does; their threads
    are read one by one, through the ORM."""
    since = heartbeat_cutoff()
    outcomes: list[Any] = [None] * len(opens)
    by_session: list[tuple[int, Any, int, int]] = []  # (place, session, user id, thread id)
    unread = [_user_unread(scope) for scope, _ in opens]
    load_together([opens[n][0]["session"] for n, fresh in enumerate(unread) if fresh])
    for n, ((scope, thread_id), fresh) in enumerate(zip(opens, unread, strict=True)):
        try:
            user_id = model_backend_user_id(scope["session"]) if fresh else None
            if user_id is not None:
                by_session.append((n, scope["session"], user_id, thread_id))
            else:
                outcomes[n] = _who_and_where_alone(scope, thread_id)
        except Exception as error:  # this socket's own; the others go on
            outcomes[n] = Failed(error)
    if not by_session:
        return outcomes
    rows = read_for_sessions(
        [(user_id, thread_id) for _, _, user_id, thread_id in by_session], since=since
    )
    for place, (n, session, _, _) in enumerate(by_session):
        try:
            found, access, run_id = opened(session, rows.get(place))
        except Exception as error:  # flushing a session no longer valid, while Redis is away
            outcomes[n] = Failed(error)
            continue
        user = opens[n][0]["user"]
        user._wrapped = found or AnonymousUser()
        outcomes[n] = (user, access, run_id)
    return outcomes


def _user_unread(scope: dict[str, Any]) -> bool:
    """The scope's user is still channels' lazy one, for this read to fill in."""
    user = scope.get("user")
    return isinstance(user, UserLazyObject) and user._wrapped is empty


def _who_and_where_alone(scope: dict[str, Any], thread_id: int) -> tuple[Any, Any, str | None]:
    """A socket's who and where when its user is not a ModelBackend session's: nobody,
    another backend's user (read as channels' get_user does), or a token's."""
    user = scope.get("user")
    if _user_unread(scope):
        user._wrapped = get_user.func(scope)
    if user is None or not user.is_authenticated:
        return user, None, None
    access = selectors.thread_for_member(
        user=user, thread_id=thread_id, streaming_run_id=streaming_run_column()
    )
    if access is None:
        return user, None, None
    run_id = access[1].streaming_run_id
    return user, access, str(run_id) if run_id is not None else None


def _who_and_where(scope: dict[str, Any], thread_id: int) -> tuple[Any, Any, str | None]:
    """One socket's who and where, alone (`_who_and_where_together` of one)."""
    (outcome,) = _who_and_where_together([(scope, thread_id)])
    if isinstance(outcome, Failed):
        raise outcome.error
    return outcome


# Sockets opening in the same turn of the event loop read who and where together, on one
# trip to a database thread (bench/socket_open.py, 100 on a trip: 0.10-0.12 ms of CPU an
# open read together, 0.52-0.89 ms with a cache read and a statement each, one after the
# other; a trip each cost more still).
_opening = ManyOnOneTrip(_who_and_where_together)


class ThreadConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        """channels' dispatch without its first step, a hop to asgiref's one thread-sensitive
        thread to close that thread's stale connections before every frame and message.
        This consumer never uses that thread (its database work goes through db_call, which
        tidies its own connections), and the hop queued every socket of the process behind
        every other on one thread."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """channels' own without its last step, the same hop as in `dispatch`: one more trip
        to that thread for every socket that closes. (This consumer leaves its groups in
        `disconnect`; it has no class-level `groups`.)"""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self) -> None:
        """The socket is accepted once it listens to its thread in this process: a client
        that sees it open hears every notice and run started here from then on, from `seq`
        1, whichever tab sends (most tabs of a thread share its run's process). Then it
        joins its groups for other processes' (waiting out a Redis restart while open). A
        refusal is accepted too, to carry its close code (a socket closed before its
        handshake only shows 1006)."""
        thread_id = self.scope["url_route"]["kwargs"]["thread_id"]
        user, access, stored_run = await _opening(self.scope, thread_id)
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_NOT_LOGGED_IN)
            return
        self.token: TokenAccess | None = self.scope.get("api_token")
        if access is None or (self.token is not None and access[0].pk != self.token.group.pk):
            await self._refuse(CLOSE_NOT_FOUND)  # a token reaches its own group's threads
            return
        self.user = user
        self.group, self.thread = access
        self.writable = selectors.may_write(thread=self.thread, user=user)
        self.token_lacks_chat = bool(self.token) and not self.token.allows(ApiToken.Scope.CHAT)
        self.resumes = TokenBucket(capacity=RESUME_BURST, per_second=RESUME_RATE)
        self.sent: dict[str, int] = {}  # run_id -> last seq this client has
        # Events reach this client from its own process (the inbox) and from others (the
        # channel layer); one lock keeps their handling, and resumes, one at a time.
        self.events_lock = asyncio.Lock()
        # made with the pump, once something has to queue: an asyncio.Queue is some 3 KiB
        # (four deques), a fifth of an idle socket's own memory
        self.inbox: asyncio.Queue | None = None
        self.origin = process_origin(self.channel_layer)
        self.pump: asyncio.Task | None = None  # started by the first event queued
        local_fanout().add(self.thread.pk, self)
        self.listening = True
        await self.accept()
        groups = [thread_group(self.thread.pk)]
        if self.token is not None:
            groups.append(token_channel_group(self.token.token.pk))
        if not await join_groups(self.channel_layer, self.channel_name, *groups):
            await self.close(code=CLOSE_TRY_AGAIN)  # Redis stayed away: the client retries
            return
        self.joined = True
        try:
            streaming = await registry().follow(self.thread.pk, stored=stored_run)
        except UNREACHABLE:
            streaming = None  # Redis is away: the client's resume finds the run
        if streaming is not None and not self._hears_from_seq_1(str(streaming)):
            # Its events reach this socket once it says where it stands (stream.resume), so a
            # reconnecting client gets no event twice; a new one resumes from 0.
            await self.send_json(to_wire(RunActive(run_id=streaming)))

    def _hears_from_seq_1(self, run_id: str) -> bool:
        """A run that this socket, listening since before the run sent anything, hears whole
        without a resume: one it has heard `seq` 1 of, or one of this process's, starting
        as the socket opened, that has sent nothing yet."""
        return run_id in self.sent or registry().heard_from_the_start(self.thread.pk, run_id)

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "listening", False):
            local_fanout().discard(self.thread.pk, self)
            if self.pump is not None:
                self.pump.cancel()
        if getattr(self, "joined", False):
            groups = [thread_group(self.thread.pk)]
            if self.token is not None:
                groups.append(token_channel_group(self.token.token.pk))
            with contextlib.suppress(*UNREACHABLE):  # the group's membership expires by itself
                for group in groups:
                    await self.channel_layer.group_discard(group, self.channel_name)

    async def token_revoked(self, message: dict[str, Any]) -> None:
        """The socket's token was revoked, or its user left the group or was deactivated."""
        await self.close(code=CLOSE_NOT_LOGGED_IN)

    async def deliver(self, event: dict[str, Any]) -> None:
        """An event from a run in this process, sent at once, by the run's own task, when
        nothing is before it (nothing queued, no resume or other event being handled) and
        it follows what this client has (no gap to read from the log): the common case,
        which so costs the stream no queue and no task switch. Else it is queued for the
        pump, a task this socket has only once something had to queue (an idle socket costs
        none); a full inbox drops it, and the gap is filled later."""
        inbox = self.inbox
        if (
            (inbox is None or inbox.empty())
            and not self.events_lock.locked()
            and self._follows_on(event)
        ):
            async with self.events_lock:  # free: taken without waiting
                try:
                    await self._handle_unlocked(event)
                except Exception:  # this socket's trouble is not the run's
                    logger.exception("thread %s: an event could not be sent", self.thread.pk)
            return
        if inbox is None:
            inbox = self.inbox = asyncio.Queue(maxsize=INBOX_SIZE)
            self.pump = asyncio.create_task(self._pump(inbox))
        with contextlib.suppress(asyncio.QueueFull):
            inbox.put_nowait(event)

    def _follows_on(self, event: dict[str, Any]) -> bool:
        """Whether handling the event needs no read of the log (see _handle_unlocked)."""
        if "seq" not in event:
            return True
        last = self.sent.get(event["run_id"])
        return last is None or event["seq"] <= last + 1

    async def _pump(self, inbox: asyncio.Queue) -> None:
        while True:
            event = await inbox.get()
            await self._handle(event)

    async def error(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        await self.send_json(to_wire(ErrorFrame(code, message, retry_after)))

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=_JSON.encode(payload))

    # --- client frames ----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if not getattr(self, "joined", False):
            return
        try:
            frame = parse_frame(text_data, max_chars=settings.PARLEY_MAX_MESSAGE_CHARS)
        except FrameError as problem:
            await self.error(problem.code, problem.message)
            return
        try:
            await self._act(frame)
        except UNREACHABLE:
            # Redis (rate limits, run locks) is away for longer than its retries: say so and
            # keep the socket; nothing was stored.
            await self.error(ErrorCode.UNAVAILABLE, sentence_for(ErrorCode.UNAVAILABLE))

    async def _act(self, frame) -> None:
        if isinstance(frame, WRITES) and self.token is not None:
            if not await db_call(still_valid)(self.token.token.pk):
                await self.close(code=CLOSE_NOT_LOGGED_IN)  # in case its close message was lost
                return
            if self.token_lacks_chat:
                code = ErrorCode.INSUFFICIENT_SCOPE
                await self.error(code, f"{sentence_for(code)} Writing needs the 'chat' scope.")
                return
        if isinstance(frame, WRITES) and not self.writable:
            await self.error(ErrorCode.READ_ONLY, sentence_for(ErrorCode.READ_ONLY))
        elif isinstance(frame, SendMessage):
            await self.on_send(frame)
        elif isinstance(frame, StopRun):
            if not await registry().request_stop(self.thread.pk, frame.run_id):
                await self.error(ErrorCode.NOT_RUNNING, sentence_for(ErrorCode.NOT_RUNNING))
        elif isinstance(frame, Regenerate):
            await self.on_regenerate(frame)
        elif isinstance(frame, EditMessage):
            await self.on_edit(frame)
        elif isinstance(frame, SwitchBranch):
            await self.on_switch(frame)
        elif isinstance(frame, Resume):
            await self.on_resume(frame)

    async def on_send(self, frame: SendMessage) -> None:
        await self._start(
            turns.send_message(
                group=self.group,
                thread=self.thread,
                user=self.user,
                content=frame.content,
                client_id=frame.client_id,
                agent_id=frame.agent_id,
            )
        )

    async def _named_message(self, message_id) -> Message | None:
        """The thread's message a frame names; None, the sender told, when there is none."""
        message = await db_call(selectors.message_in_thread)(
            thread=self.thread, message_id=message_id
        )
        if message is None:
            await self.error(ErrorCode.NOT_FOUND, "That message is not in this conversation.")
        return message

    async def on_regenerate(self, frame: Regenerate) -> None:
        message = await self._named_message(frame.message_id)
        if message is None:
            return
        await self._start(
            turns.regenerate(
                group=self.group,
                thread=self.thread,
                user=self.user,
                message=message,
                agent_id=frame.agent_id,
            )
        )

    async def on_edit(self, frame: EditMessage) -> None:
        message = await self._named_message(frame.message_id)
        if message is None:
            return
        await self._start(
            turns.edit_message(
                group=self.group,
                thread=self.thread,
                user=self.user,
                message=message,
                content=frame.content,
                client_id=frame.client_id,
                agent_id=frame.agent_id,
            )
        )

    async def on_switch(self, frame: SwitchBranch) -> None:
        message = await self._named_message(frame.message_id)
        if message is None:
            return
        try:
            await turns.switch_branch(group=self.group, thread=self.thread, message=message)
        except Busy:
            await self.error(ErrorCode.BUSY, sentence_for(ErrorCode.BUSY))

    async def _start(self, starting) -> None:
        """Start a run (chat.turns); a refusal becomes an error frame."""
        try:
            await starting
        except RateLimited as limited:
            await self.error(
                ErrorCode.RATE_LIMITED,
                f"You are sending messages too fast. Try again in {limited.retry_after} s.",
                retry_after=limited.retry_after,
            )
        except Busy:
            await self.error(ErrorCode.BUSY, sentence_for(ErrorCode.BUSY))
        except ValidationError as problem:
            await self.error(ErrorCode.INVALID, " ".join(problem.messages))

    async def on_resume(self, frame: Resume) -> None:
        wait = self.resumes.take()
        if wait:
            await self.error(
                ErrorCode.RATE_LIMITED,
                f"Too many resumes. Try again in {wait} s.",
                retry_after=wait,
            )
            return
        async with self.events_lock:
            await self._resume(frame)

    async def _resume(self, frame: Resume) -> None:
        """Replay what the client lacks of the thread's latest run, then say where it stands.
        A client that names an older run gets that run's rest, then the newer run whole."""
        streaming = await registry().follow(self.thread.pk)
        latest = streaming or await db_call(selectors.latest_run_id)(thread=self.thread)
        latest = str(latest) if latest is not None else None
        wanted: list[tuple[str, int]] = []
        if frame.run_id is not None and str(frame.run_id) != latest:
            wanted.append((str(frame.run_id), frame.after_seq))
            if latest is not None:
                wanted.append((latest, 0))
        elif latest is not None:
            wanted.append((latest, frame.after_seq))
        for run_id, after_seq in wanted:
            events = await db_call(selectors.run_events)(
                thread=self.thread, run_id=run_id, after_seq=after_seq
            )
            self.sent[run_id] = after_seq
            for event in events:
                await self._forward(event)
        position = self.sent.get(latest, 0) if latest is not None else 0
        await self.send_json(
            to_wire(
                StreamResumed(run_id=latest, last_seq=position, streaming=streaming is not None)
            )
        )

    # --- live events -------------------------------------------------------------------------

    async def run_events(self, message: dict[str, Any]) -> None:
        """Events from another process (this process's own arrive through the inbox)."""
        if self.origin is not None and message.get("origin") == self.origin:
            return
        for event in message["events"]:
            await self._handle(event)

    async def _handle(self, event: dict[str, Any]) -> None:
        async with self.events_lock:
            await self._handle_unlocked(event)

    async def _handle_unlocked(self, event: dict[str, Any]) -> None:
        if "seq" not in event:
            await self.send_json(event)
            return
        run_id = event["run_id"]
        last = self.sent.get(run_id)
        if last is None:
            if event["seq"] != 1:
                return  # a run that began before this socket opened: it was told (run.active)
            last = self.sent[run_id] = 0
        if event["seq"] > last + 1:
            await self._fill_gap(run_id, last, event["seq"])
            if event["seq"] > self.sent[run_id] + 1 and event["type"] not in FINAL_EVENTS:
                return  # the log is further behind: this event comes from it with the gap
        await self._forward(event)

    async def _forward(self, event: dict[str, Any]) -> None:
        """Send each event of a run once, in order; what this client has is skipped."""
        run_id, seq = event["run_id"], event["seq"]
        if seq <= self.sent.get(run_id, 0):
            return
        self.sent[run_id] = seq
        await self.send_json(event)

    async def _fill_gap(self, run_id: str, last: int, upto: int) -> None:
        """Events this client missed (it resumed, or fell behind), read from the log, as far as
        they follow on without a hole: a client never gets an event past one it lacks."""
        for attempt in range(GAP_WAITS):
            missing = await db_call(selectors.run_events)(
                thread=self.thread, run_id=run_id, after_seq=last, before_seq=upto
            )
            if len(missing) == upto - last - 1 or attempt + 1 == GAP_WAITS:
                break
            await asyncio.sleep(GAP_WAIT_SECONDS)
        for event in missing:
            if event["seq"] != self.sent[run_id] + 1:
                return
            await self._forward(event)
