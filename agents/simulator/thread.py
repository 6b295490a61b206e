"""The simulator on a local port in a background thread, started and stopped by tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Self

from aiohttp import web

from agents.simulator.app import build_app
from agents.simulator.state import ReportedUsage, SimulatorConfig, SimulatorState


class SimulatorThread:
    """Runs the simulator on 127.0.0.1 in a background thread with its own event loop.

    A thread (not a task on the test's loop) so synchronous code and tests with any event
    loop can use it, and so a test that blocks its own loop cannot stall the server.
    """

    def __init__(
        self, *, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = SimulatorState(config=config or SimulatorConfig())
        self._socket = socket.create_server((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="provider-simulator", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def usage_log(self) -> list[ReportedUsage]:
        return self.state.usage_log

    @property
    def request_log(self) -> list[dict[str, Any]]:
        return self.state.request_log

    def clear(self) -> None:
        self.state.clear()

    def start(self) -> Self:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("The provider simulator failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.ident is not None:
            self._thread.join()
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Streams cut short by a test must not hold shutdown for aiohttp's default minute.
        runner = web.AppRunner(build_app(state=self.state), shutdown_timeout=0.5)
        try:
            await runner.setup()
            await web.SockSite(runner, self._socket).start()
        except Exception as error:
            self._error = error
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
