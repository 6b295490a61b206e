"""Streamed text in frames: the first token at once, then at most one frame per interval.

A model streams a token every few milliseconds; sending each as its own event costs
the same at every step after it (fan-out, the durable log, JSON, WebSocket framing,
the browser's repaint) whatever its size. Frames keep the first token immediate and
then carry everything that arrived since the last frame, no more often than the
interval (PARLEY_STREAM_FRAME_MS; 0 sends every token as it comes). The text is the
same; only the number of events changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class DeltaFrames:
    """Collects a call's text and hands it to `send` in frames, in order.

    `send` runs under `lock`, the lock a stop takes before it cancels the stream, so a
    frame is either sent whole or not at all. Call `drain()` when the stream ends (or
    fails) and `drain_locked()` from inside the lock when it is stopped: text that
    arrived is never left behind.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float,
        lock: asyncio.Lock,
    ) -> None:
        self._send = send
        self._interval = interval
        # Text that comes a moment short of its frame's time goes at once. The provider's
        # reads are held to the same interval (agents.providers.sse.paced), counted from a
        # moment before the frame's: without it, nearly every frame would wait those few
        # milliseconds on a timer, a timer and a task a frame.
        self._slack = interval / 5
        self._lock = lock
        self._pending: list[str] = []
        self._next_at = 0.0  # the first frame goes at once
        self._timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task | None = None
        self._closed = False
        self._failure: Exception | None = None

    async def add(self, text: str) -> None:
        self._raise_failure()
        if self._closed:
            return  # stopped: nothing more goes out
        self._pending.append(text)
        if self._timer is not None or self._flusher is not None:
            return  # a frame is already due; it takes this text along
        if time.monotonic() >= self._next_at - self._slack:
            await self._flush()
        else:
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._next_at - time.monotonic())
        self._timer = loop.call_at(loop.time() + delay, self._due)

    def _due(self) -> None:
        self._timer = None
        self._flusher = asyncio.get_running_loop().create_task(self._flush_due())

    async def _flush_due(self) -> None:
        try:
            await self._flush()
        except Exception as problem:  # kept for the stream's next step: it fails the call
            self._failure = problem
            self._closed = True
        finally:
            self._flusher = None
            if self._pending and not self._closed:
                self._schedule()  # text that arrived while the frame was being sent

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _flush(self) -> None:
        async with self._lock:
            await self.drain_locked(close=False)

    async def drain_locked(self, *, close: bool = True) -> None:
        """Send what is pending now; the caller holds the lock. Closing stops later frames."""
        if close:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._closed:
            return
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self._next_at = time.monotonic() + self._interval
            await self._send(text)

    async def drain(self) -> None:
        """The stream ended: send what is pending, after any frame already on its way.
        A frame that failed on its timer fails here."""
        try:
            flusher = self._flusher
            if flusher is not None and flusher is not asyncio.current_task():
                await flusher
            self._raise_failure()
            async with self._lock:
                await self.drain_locked()
        finally:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
