"""How the JSON API writes its objects: ids, ISO 8601 times with a zone, tokens as ints,
money as decimal strings (never floats)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.configuration import AgentConfig
from billing.selectors import BudgetStatus, Line, Totals, UsageBreakdown
from chat import selectors
from chat.models import AIThread, Message
from ontology.models import User


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def agent_payload(agent: AgentConfig) -> dict[str, Any]:
    props = agent.properties
    return {
        "id": agent.id,
        "name": agent.name,
        "provider": props.get("provider"),
        "model": props.get("model"),
        "tools": list(props.get("tools") or []),
        "rag_enabled": bool(props.get("ragEnabled")),
    }


def thread_payload(thread: AIThread, *, user: User) -> dict[str, Any]:
    return {
        "id": thread.pk,
        "title": thread.title,
        "agent": {"id": thread.agent_id, "name": thread.agent.name if thread.agent else None},
        "status": thread.status,
        "author_id": thread.user_id,
        "writable": selectors.may_write(thread=thread, user=user),
        "created_at": _time(thread.created_at),
        "last_activity_at": _time(thread.last_activity_at),
    }


def message_payload(message: Message) -> dict[str, Any]:
    payload = {
        **selectors.message_payload(message),
        "client_id": message.client_id,
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "run_id": str(message.run_id) if message.run_id else None,
        "sources": message.sources,
        "usage": _usage(message.usage),
    }
    if message.error_code:
        payload["error_code"] = message.error_code
    return payload


def _usage(stored: dict[str, Any]) -> dict[str, Any] | None:
    """A stored answer's usage: tokens as ints, cost as a decimal string; None for questions."""
    if not stored:
        return None
    return {
        "input_tokens": int(stored.get("input", 0)),
        "output_tokens": int(stored.get("output", 0)),
        "cost": str(stored.get("cost", "0")),
        "calls": int(stored.get("calls", 0)),
    }


def run_payload(run_id: str, final: dict[str, Any] | None, answer: Message | None) -> dict:
    """How a run ended: completed, stopped or error (with its code and message)."""
    kinds = {"run.completed": "completed", "run.stopped": "stopped", "error": "error"}
    status = kinds.get(final["type"], "error") if final else "error"
    usage = _usage(answer.usage) if answer is not None else None
    payload: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "usage": usage and {k: usage[k] for k in ("input_tokens", "output_tokens")},
        "cost": usage["cost"] if usage else None,
    }
    if status == "error":
        payload["error"] = {
            "code": (final or {}).get("code", "internal"),
            "message": (final or {}).get("message", ""),
        }
    return payload


def _totals(totals: Totals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "failed_calls": totals.failed_calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cached_tokens": totals.cached_tokens,
        "cost": str(totals.cost),
    }


def _lines(lines: list[Line], key: str) -> list[dict[str, Any]]:
    return [{key: line.key, "label": line.label, **_totals(line.totals)} for line in lines]


def usage_payload(report: UsageBreakdown, budget: BudgetStatus) -> dict[str, Any]:
    return {
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "totals": _totals(report.totals),
        "by_day": [{"day": line.key.isoformat(), **_totals(line.totals)} for line in report.by_day],
        "by_model": [
            {"provider": line.key[0], "model": line.key[1], **_totals(line.totals)}
            for line in report.by_model
        ],
        "by_agent": _lines(report.by_agent, "agent_id"),
        "by_user": _lines(report.by_user, "user_id"),
        "budget": {
            "month": budget.month.isoformat(),
            "spent": str(budget.spent),
            "tokens": budget.tokens,
            "budget": None if budget.budget is None else str(budget.budget),
            "token_budget": budget.token_budget,
            "percent": budget.percent,
            "exhausted": budget.exhausted,
            "resets_on": budget.resets_on.isoformat(),
        },
    }
