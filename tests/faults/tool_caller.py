"""The agent's side of a tool call, as its own process (on the broker of the caller's
choosing): `python -m tests.faults.tool_caller <group id> <user id> <run id> <timeout>`
sends one createTask call through agents.tools.dispatch, waits for it and prints the
outcome as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from agents.providers import ToolCallRequest
    from agents.tools.dispatch import ToolRun, run_tool_call
    from ontology.models import Group, User

    group_id, user_id, run_id, timeout = sys.argv[1:5]
    run = ToolRun(
        group=Group.objects.get(pk=group_id),
        user=User.objects.get(pk=user_id),
        agent_id=None,
        thread_id=None,
        run_id=uuid.UUID(run_id),
        allowed=frozenset({"createTask"}),
        timeout=float(timeout),
    )
    call = ToolCallRequest(id="call_1", name="createTask", arguments='{"title": "Call back"}')
    outcome = asyncio.run(run_tool_call(call, run))
    print(json.dumps({"ok": outcome.ok, "result": outcome.result, "error": outcome.error}))


if __name__ == "__main__":
    main()
