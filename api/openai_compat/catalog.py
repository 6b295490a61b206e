"""Agents as OpenAI models: each active agent of the token's group is one model.

A model id is the agent's name as a slug, then its id: "support-bot-12". It reads well in
a client's configuration and names exactly one agent, found by its id inside the token's
group and only when the slug still matches (a renamed agent gets a new id; the old one
then answers 404, as an unknown model does, rather than quietly reaching another agent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.text import slugify

from agents.configuration import AgentConfig, GroupConfiguration
from agents.models import Agent
from ontology.models import Group
from ontology.scoping import group_scope

_TRAILING_ID = re.compile(r"-(\d{1,18})$")


@dataclass(frozen=True)
class AgentModel:
    id: str
    created: int  # epoch seconds
    owned_by: str

    def as_openai(self) -> dict:
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


def model_id(*, agent_id: int, name: str) -> str:
    return f"{slugify(name)[:60].strip('-') or 'agent'}-{agent_id}"


def agent_models(group: Group) -> list[AgentModel]:
    """The group's active agents as models, by name."""
    with group_scope(group):
        rows = Agent.objects.filter(status=Agent.Status.ACTIVE).values_list(
            "pk", "name", "created_at"
        )
        return [
            AgentModel(model_id(agent_id=pk, name=name), int(created.timestamp()), group.slug)
            for pk, name, created in rows
        ]


def agent_for_model(configuration: GroupConfiguration, wanted: str) -> AgentConfig | None:
    """The active agent a model id names in a group's configuration (agents.configuration:
    the process's cached copy), or None (unknown, renamed, disabled, or another group's:
    all alike)."""
    match = _TRAILING_ID.search(wanted or "")
    if match is None:
        return None
    agent = configuration.agents.get(int(match.group(1)))
    if agent is None or not agent.active or model_id(agent_id=agent.id, name=agent.name) != wanted:
        return None
    return agent
