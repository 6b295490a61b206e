"""The chat app's tool: hand the conversation to a human (registered in ChatConfig.ready)."""

from __future__ import annotations

from typing import Any

from agents.tools import ToolFailed, ToolSpec, object_schema, register_tool
from agents.tools.context import ToolContext
from chat import services


def call_human_tool(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    if ctx.thread is None:
        raise ToolFailed("There is no conversation to hand over.")
    notified = services.thread_hand_off(
        thread=ctx.thread, reason=arguments["reason"], actor=ctx.user
    )
    return {"handed_off": True, "notified": notified}


def register_chat_tools() -> None:
    register_tool(
        ToolSpec(
            "callHuman",
            "Call a human",
            "Hand the conversation to a human in the organisation when the user asks for one "
            "or the request cannot be handled.",
            object_schema(
                {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}}, ["reason"]
            ),
            execute=call_human_tool,
            summarize=lambda r: f"Handed to a human ({r.get('notified', 0)} notified)",
            activity="Calling a human",
        )
    )
