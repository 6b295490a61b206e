"""The agent loop. `AgentRun(...).execute()` answers one user message, streaming to a sink."""

from agents.engine.run import AgentRun, RunResult, RunSink

__all__ = ["AgentRun", "RunResult", "RunSink"]
