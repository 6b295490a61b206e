"""A stand-in for the OpenAI and Anthropic HTTP APIs, driven by the real SDKs in tests and demos.

No LLM API is reachable from where Parley is built and tested, so the real SDKs talk to
this over HTTP instead: the bytes on the wire (SSE framing, error bodies, status codes,
``retry-after``) match the real APIs closely enough that the official clients parse them,
which is what lets the platform's provider code be tested without mocks.

What the model says is decided without I/O: `scenario` reads the ``@name;key=value`` suffix,
`conversation` reduces a request to what the model reads and counts its prompt,
`behaviours` (with `offline`) plans a `replies.Reply` or `replies.Failure`. The wires render
it: `openai_chat`, `anthropic_messages` and `embeddings`, sharing `exchange`, `errors` and
`sse`; `app` routes them, `state` keeps the logs and `thread` runs it all for tests.
"""

from agents.simulator.app import build_app
from agents.simulator.scenario import SCENARIO_HEADER, Scenario, parse_scenario
from agents.simulator.state import ReportedUsage, SimulatorConfig, SimulatorState
from agents.simulator.thread import SimulatorThread

__all__ = [
    "SCENARIO_HEADER",
    "ReportedUsage",
    "Scenario",
    "SimulatorConfig",
    "SimulatorState",
    "SimulatorThread",
    "build_app",
    "parse_scenario",
]
