"""Celery tasks of the agents app: tool calls (knowledge jobs: agents/knowledge/tasks.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.models import ToolCall
from agents.tools.context import ToolContext
from agents.tools.registry import TOOLS, ToolFailed
from ontology.models import Group
from ontology.scoping import group_scope

logger = logging.getLogger(__name__)


def tool_outcome(record: ToolCall) -> dict[str, Any]:
    return {
        "ok": record.status == ToolCall.Status.OK,
        "result": record.result,
        "error": record.error,
    }


@shared_task(name="agents.run_tool", acks_late=True, reject_on_worker_lost=True)
def run_tool(*, group_id: int, call_id: str) -> dict[str, Any]:
    """Run one tool call once. A redelivered or repeated task returns the stored outcome.

    The executor's writes and the call's result commit together, under a lock on the call's
    row, so a worker killed mid-call leaves nothing behind, the call is sent again (by the
    run waiting for it, or by the broker once its visibility timeout passes) and runs once.
    """
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return {"ok": False, "result": None, "error": "The organisation no longer exists."}
    with group_scope(group):
        # Committed before the call runs: a pending call with a start and no lock held on
        # its row is one whose worker died mid-call (agents.tools.dispatch sends it again).
        ToolCall.objects.filter(call_id=call_id, status=ToolCall.Status.PENDING).update(
            started_at=timezone.now(), attempts=F("attempts") + 1
        )
    with group_scope(group), transaction.atomic():
        record = (
            ToolCall.objects.select_for_update(of=("self",))
            .select_related("user", "agent", "thread")
            .filter(call_id=call_id)
            .first()
        )
        if record is None:
            return {"ok": False, "result": None, "error": "Unknown tool call."}
        if record.status != ToolCall.Status.PENDING:
            return tool_outcome(record)
        spec = TOOLS.get(record.name)
        context = ToolContext(
            group=group,
            user=record.user,
            agent=record.agent,
            thread=record.thread,
            call_id=call_id,
        )
        try:
            with transaction.atomic():
                if spec is None or spec.execute is None:
                    raise ToolFailed(f"The tool {record.name} is not available.")
                record.result = spec.execute(context, record.arguments)
            record.status = ToolCall.Status.OK
        except ToolFailed as failure:
            record.status, record.error = ToolCall.Status.FAILED, str(failure)
        except Exception as error:
            logger.exception("tool %s failed (call %s)", record.name, call_id)
            record.status = ToolCall.Status.FAILED
            record.error = f"The tool failed unexpectedly ({type(error).__name__})."
        record.finished_at = timezone.now()
        record.save(update_fields=["status", "result", "error", "finished_at"])
        return tool_outcome(record)
