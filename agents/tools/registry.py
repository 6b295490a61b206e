"""The tool registry: each tool's JSON-schema parameters, its executor and a one-line summary.

An agent's `tools` property names entries here. Executors run in Celery workers
(see agents.tasks) with the group's scope active, and raise ToolFailed for a
failure the model should read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from agents.tools.context import ToolContext


class ToolFailed(Exception):
    """A tool could not do its job; the message is shown to the model and the user."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    label: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    execute: Callable[[ToolContext, dict[str, Any]], dict[str, Any]] | None = None
    summarize: Callable[[dict[str, Any]], str] = lambda result: "Done"
    activity: str = ""  # what the chat shows while it runs, e.g. "Searching knowledge"

    @property
    def running_label(self) -> str:
        return f"{self.activity or self.label}…"

    def validation_errors(self, arguments: Any) -> list[str]:
        validator = Draft202012Validator(self.parameters)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or 'arguments'}: {error.message}"
            for error in validator.iter_errors(arguments)
        ]


TOOLS: dict[str, ToolSpec] = {}


def register_tool(spec: ToolSpec) -> ToolSpec:
    TOOLS[spec.name] = spec
    return spec


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
