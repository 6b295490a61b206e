"""A stand-in for the OpenAI and Anthropic HTTP APIs, driven by the real SDKs in tests and demos.

`scenarios` decides what the simulated model answers and bills; `server` speaks the two
wire formats over HTTP and runs in a background thread for tests.
"""

from agents.simulator.scenarios import Scenario, parse_scenario
from agents.simulator.server import (
    SCENARIO_HEADER,
    ReportedUsage,
    SimulatorConfig,
    SimulatorState,
    SimulatorThread,
    build_app,
)

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
