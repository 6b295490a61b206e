"""The built-in tools. Each acts only inside the calling group, through services.

chat registers the hand-off tool (callHuman) itself: a thread is chat's.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from agents.knowledge.retrieval import Who
from agents.knowledge.selectors import search_knowledge
from agents.tools.context import ToolContext
from agents.tools.registry import ToolFailed, ToolSpec, object_schema, register_tool
from ontology import services as ontology_services
from ontology.models import Thing

DEFAULT_SEARCH_LIMIT = 5


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


PASSAGE_CHARS = 1200


def search_knowledge_tool(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    properties = ctx.agent.properties if ctx.agent is not None else {}
    limit = arguments.get("limit") or properties.get("ragTopK") or DEFAULT_SEARCH_LIMIT
    who = Who(
        user_id=getattr(ctx.user, "pk", None),
        agent_id=getattr(ctx.agent, "pk", None),
        thread_id=getattr(ctx.thread, "pk", None),
    )
    hits = search_knowledge(
        group=ctx.group, query=arguments["query"], limit=limit, properties=properties, who=who
    )
    return {
        "results": [
            {
                "n": n,
                "knowledge_id": hit.knowledge_id,
                "title": hit.citation_title,
                "content": hit.content[:PASSAGE_CHARS],
                "score": round(hit.score, 6),
            }
            for n, hit in enumerate(hits, start=1)
        ]
    }


def create_task_tool(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "description": arguments.get("description", ""),
        "priority": arguments.get("priority", "normal"),
        "createdFrom": f"thread:{ctx.thread.pk}" if ctx.thread else "agent",
    }
    if arguments.get("dueDate"):
        properties["dueDate"] = arguments["dueDate"]
    try:
        task = ontology_services.thing_create(
            group=ctx.group,
            type=Thing.Type.TASK,
            name=arguments["title"],
            properties=properties,
            actor=ctx.user,
        )
    except ValidationError as error:
        raise ToolFailed("; ".join(error.messages)) from error
    if ctx.user is not None:
        ontology_services.connection_create(
            group=ctx.group,
            type="created_task",
            from_user=ctx.user,
            to_thing=task,
            actor=ctx.user,
            metadata={"tool_call": ctx.call_id},
        )
    return {"task_id": task.pk, "title": task.name}


def update_profile_tool(ctx: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    if ctx.user is None:
        raise ToolFailed("There is no signed-in user whose profile could be updated.")
    if "displayName" not in arguments and "preferences" not in arguments:
        raise ToolFailed("Nothing to update: give a display name or preferences.")
    user = ontology_services.user_update_profile(
        user=ctx.user,
        group=ctx.group,
        actor=ctx.user,
        display_name=arguments.get("displayName"),
        preferences=arguments.get("preferences"),
    )
    return {"display_name": user.display_name, "preferences": user.preferences}


register_tool(
    ToolSpec(
        "searchKnowledge",
        "Search knowledge",
        "Search the organisation's knowledge base and return the most relevant passages "
        "with their sources. Cite passages as [n].",
        object_schema(
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            ["query"],
        ),
        execute=search_knowledge_tool,
        summarize=lambda r: _count(len(r.get("results", [])), "passage") + " found",
        activity="Searching knowledge",
    )
)
register_tool(
    ToolSpec(
        "createTask",
        "Create task",
        "Create a task for the user in the organisation's task list.",
        object_schema(
            {
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": {"type": "string", "maxLength": 10000},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                "dueDate": {"type": "string", "format": "date"},
            },
            ["title"],
        ),
        execute=create_task_tool,
        summarize=lambda r: f"Created task “{r.get('title', '')}”",
        activity="Creating a task",
    )
)
register_tool(
    ToolSpec(
        "updateProfile",
        "Update profile",
        "Update the calling user's display name or preferences.",
        object_schema(
            {
                "displayName": {"type": "string", "minLength": 1, "maxLength": 150},
                "preferences": {"type": "object"},
            },
            [],
        ),
        execute=update_profile_tool,
        summarize=lambda r: "Profile updated",
        activity="Updating your profile",
    )
)
