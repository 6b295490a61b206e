"""What a running simulator remembers: its pacing defaults, and logs the tests read back."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agents.simulator.scenario import COUNTED_SCENARIOS, Scenario


@dataclass
class SimulatorConfig:
    ttft_ms: float = 0.0  # default delay before the first token
    tokens_per_second: float = 0.0  # 0 = no delay between tokens


@dataclass(frozen=True)
class ReportedUsage:
    """Exactly what one response told the client, so tests can compare the platform's meter.

    ``input_tokens`` is the whole prompt (for Anthropic: input + cache reads), and
    ``cached_tokens`` the part of it served from the cache.
    """

    wire: str
    model: str
    response_id: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int


@dataclass
class SimulatorState:
    """Logs shared with the test thread; list appends are atomic, the counters take a lock.

    ``record=False`` keeps nothing, so a long-running demo or benchmark server stays flat.
    """

    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    record: bool = True
    usage_log: list[ReportedUsage] = field(default_factory=list)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_attempt(self, scenario: Scenario, fingerprint: str) -> int:
        """Count tries of one request; only the ``*_once`` scenarios need it, so only they count."""
        if scenario.name not in COUNTED_SCENARIOS:
            return 1
        with self.lock:
            count = self.attempts.get((scenario.name, fingerprint), 0) + 1
            self.attempts[(scenario.name, fingerprint)] = count
            return count

    def log_request(self, entry: dict[str, Any]) -> None:
        if self.record:
            self.request_log.append(entry)

    def log_usage(self, usage: ReportedUsage) -> None:
        if self.record:
            self.usage_log.append(usage)

    def clear(self) -> None:
        with self.lock:
            self.usage_log.clear()
            self.request_log.clear()
            self.attempts.clear()


STATE = web.AppKey("simulator_state", SimulatorState)
