"""Tools an agent can call: the registry, the built-ins, and the dispatcher that runs them."""

from agents.tools.registry import TOOLS, ToolFailed, ToolSpec, object_schema, register_tool

__all__ = ["TOOLS", "ToolFailed", "ToolSpec", "object_schema", "register_tool"]
