from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.models import Model

    from ontology.models import Group, Thing, User


@dataclass(frozen=True)
class ToolContext:
    """Who a tool acts for. Built in the worker from the ToolCall row, inside the group's scope."""

    group: Group
    user: User | None
    agent: Thing | None
    thread: Model | None  # the chat thread the call came from (chat's AIThread)
    call_id: str
