from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.models import AIThread
    from ontology.models import Group, Thing, User


@dataclass(frozen=True)
class ToolContext:
    """Who a tool acts for. Built in the worker from the ToolCall row, inside the group's scope."""

    group: Group
    user: User | None
    agent: Thing | None
    thread: AIThread | None
    call_id: str
