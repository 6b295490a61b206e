"""The tool registry: the tools an agent may be given, with their JSON-schema parameters.

An agent's `tools` property names entries of this registry. The engine issue
attaches the executors (Celery tasks on the `tools` queue) to these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    name: str
    label: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in [
        ToolSpec(
            "searchKnowledge",
            "Search knowledge",
            "Search the organisation's knowledge base and return the most relevant passages "
            "with their sources.",
            _object(
                {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                },
                ["query"],
            ),
        ),
        ToolSpec(
            "createTask",
            "Create task",
            "Create a task for the user in the organisation's task list.",
            _object(
                {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": {"type": "string", "maxLength": 10000},
                    "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                    "dueDate": {"type": "string", "format": "date"},
                },
                ["title"],
            ),
        ),
        ToolSpec(
            "updateProfile",
            "Update profile",
            "Update the calling user's display name or preferences.",
            _object(
                {
                    "displayName": {"type": "string", "minLength": 1, "maxLength": 150},
                    "preferences": {"type": "object"},
                },
                [],
            ),
        ),
        ToolSpec(
            "callHuman",
            "Call a human",
            "Hand the conversation to a human in the organisation when the user asks for one "
            "or the request cannot be handled.",
            _object({"reason": {"type": "string", "minLength": 1, "maxLength": 1000}}, ["reason"]),
        ),
    ]
}
