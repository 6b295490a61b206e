"""Run a model's tool calls from the agent loop: validate, hand to Celery, wait with a timeout."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from agents.models import ToolCall
from agents.providers import ToolCallRequest
from agents.tools.registry import TOOLS
from ontology.db_async import db_call
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)


@dataclass
class ToolRun:
    """Where tool calls run: the group, the person and the conversation they act for."""

    group: Any
    user: Any
    agent_id: int | None
    thread_id: int | None
    run_id: Any
    allowed: frozenset[str]
    timeout: float
    step: int = 0


@dataclass
class ToolOutcome:
    call: ToolCallRequest
    ok: bool
    result: dict[str, Any] | None = None
    error: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if not self.ok:
            return self.error
        spec = TOOLS.get(self.call.name)
        return spec.summarize(self.result or {}) if spec else "Done"

    def for_model(self) -> str:
        """What the model reads back: the result itself, or the failure in words."""
        if self.ok:
            return json.dumps(self.result, ensure_ascii=False)
        return json.dumps({"error": self.error}, ensure_ascii=False)


def _check(call: ToolCallRequest, run: ToolRun) -> tuple[dict[str, Any], str]:
    if call.name not in run.allowed or call.name not in TOOLS:
        return {}, f"The tool {call.name!r} is not available to this agent."
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {}, f"The arguments for {call.name} are not valid JSON."
    errors = TOOLS[call.name].validation_errors(arguments)
    if errors:
        return arguments, f"Invalid arguments for {call.name}: " + "; ".join(errors)
    return arguments, ""


def _record(call: ToolCallRequest, run: ToolRun, arguments: dict[str, Any], index: int) -> ToolCall:
    with group_scope(run.group):
        record, _ = ToolCall.objects.get_or_create(
            call_id=_call_key(call, run, index),
            defaults={
                "group": run.group,
                "run_id": run.run_id,
                "thread_id": run.thread_id,
                "agent_id": run.agent_id,
                "user": run.user,
                "name": call.name,
                "arguments": arguments,
            },
        )
    return record


def _call_key(call: ToolCallRequest, run: ToolRun, index: int) -> str:
    # Model call ids are unique per response at best: qualify them by run, step and position.
    return f"{run.run_id}:{run.step}:{index}:{call.id}"[:120]


def _mark_timed_out(call_key: str, run: ToolRun) -> None:
    """Record the timeout unless the tool is still running (its worker holds the row lock).

    A running tool is not waited for: it records its own outcome when it ends,
    while the model has already been told that it timed out.
    """
    with group_scope(run.group), transaction.atomic():
        waiting = ToolCall.objects.select_for_update(skip_locked=True).filter(
            call_id=call_key, status=ToolCall.Status.PENDING
        )
        ToolCall.objects.filter(pk__in=list(waiting.values_list("pk", flat=True))).update(
            status=ToolCall.Status.FAILED,
            error=f"Timed out after {run.timeout:g} s.",
            finished_at=timezone.now(),
        )


_waiter_pool: ThreadPoolExecutor | None = None


def _waiters() -> ThreadPoolExecutor:
    """Threads that wait for tool results, sized for many runs, apart from asyncio's default."""
    global _waiter_pool
    if _waiter_pool is None:
        _waiter_pool = ThreadPoolExecutor(
            max_workers=settings.PARLEY_TOOL_WAIT_THREADS, thread_name_prefix="tool-wait"
        )
    return _waiter_pool


def _worker_lost(call_key: str, run: ToolRun) -> bool:
    """A worker began the call (its start is committed) and no longer holds the call's row:
    it died mid-call, and its transaction, the tool's writes with it, was rolled back. (A
    worker between marking the start and taking the lock looks the same for an instant;
    the call sent again then waits for the lock and finds the call done.)"""
    with group_scope(run.group), transaction.atomic():
        unlocked = ToolCall.objects.select_for_update(skip_locked=True).filter(
            call_id=call_key, status=ToolCall.Status.PENDING, started_at__isnull=False
        )
        return bool(list(unlocked.values_list("pk", flat=True)[:1]))


def _send(call_key: str, run: ToolRun, attempt: int):
    from agents.tasks import run_tool

    return run_tool.apply_async(
        kwargs={"group_id": run.group.pk, "call_id": call_key},
        task_id=call_key if attempt == 0 else f"{call_key}:{attempt}",
        soft_time_limit=run.timeout + 5,
        time_limit=run.timeout + 15,
    )


def _send_and_wait(call_key: str, run: ToolRun) -> dict[str, Any]:
    """Blocking: runs in a tool-wait thread. The worker gets a hard limit past the timeout.

    While it waits it looks, every PARLEY_TOOL_WORKER_CHECK_SECONDS, for a worker that died
    mid-call (the broker would hand its message to another worker only after its visibility
    timeout), and sends the call again at once: the call runs exactly once either way.
    """
    deadline = time.monotonic() + run.timeout
    attempt = 0
    result = _send(call_key, run, attempt)
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                return result.get(
                    timeout=max(0.01, min(left, settings.PARLEY_TOOL_WORKER_CHECK_SECONDS)),
                    propagate=False,
                    disable_sync_subtasks=False,
                )
            except CeleryTimeout:
                if time.monotonic() >= deadline:
                    break
                if _worker_lost(call_key, run):
                    attempt += 1
                    logger.warning("tool call %s: its worker died; sending it again", call_key)
                    result = _send(call_key, run, attempt)
        result.revoke()
        _mark_timed_out(call_key, run)
        return {"ok": False, "result": None, "error": f"Timed out after {run.timeout:g} s."}
    finally:
        connections.close_all()  # this thread's connection, if it opened one


async def run_tool_call(call: ToolCallRequest, run: ToolRun, index: int = 0) -> ToolOutcome:
    arguments, problem = _check(call, run)
    if problem:
        return ToolOutcome(call=call, ok=False, error=problem, arguments=arguments)
    record = await db_call(_record)(call, run, arguments, index)
    if record.status != ToolCall.Status.PENDING:  # already ran (a replayed run)
        return ToolOutcome(
            call, record.status == ToolCall.Status.OK, record.result, record.error, arguments
        )
    loop = asyncio.get_running_loop()
    payload = await loop.run_in_executor(_waiters(), _send_and_wait, record.call_id, run)
    if not isinstance(payload, dict):  # the task itself crashed
        payload = {"ok": False, "result": None, "error": "The tool failed unexpectedly."}
    return ToolOutcome(
        call=call,
        ok=bool(payload.get("ok")),
        result=payload.get("result"),
        error=payload.get("error") or "",
        arguments=arguments,
    )


async def run_tool_calls(calls: list[ToolCallRequest], run: ToolRun) -> list[ToolOutcome]:
    """Run the calls of one model turn concurrently; results keep the calls' order."""
    return list(
        await asyncio.gather(*(run_tool_call(call, run, i) for i, call in enumerate(calls)))
    )
