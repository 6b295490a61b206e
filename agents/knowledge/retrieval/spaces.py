"""Which embedding models a group needs, and which one a search may use right now."""

from __future__ import annotations

from django.conf import settings

from agents import catalog
from agents.models import Agent, EmbeddingIndex
from ontology.models import Group
from ontology.scoping import group_scope


def group_embedding_model(group: Group) -> str:
    chosen = (group.properties or {}).get("embeddingModel")
    if chosen and catalog.get_embedding_model(chosen) is not None:
        return chosen
    return settings.PARLEY_EMBEDDING_MODEL


def agent_embedding_model(group: Group, properties: dict | None) -> str:
    """The agent's own embedding model, else its group's."""
    chosen = (properties or {}).get("embeddingModel")
    if chosen and catalog.get_embedding_model(chosen) is not None:
        return chosen
    return group_embedding_model(group)


def wanted_models(group: Group) -> list[str]:
    """The group's model first, then every model one of its agents asks for."""
    with group_scope(group):
        asked = Agent.objects.values_list("properties__embeddingModel", flat=True)
        models = [group_embedding_model(group)]
        models += sorted({m for m in asked if m and catalog.get_embedding_model(m) is not None})
    return list(dict.fromkeys(models))


def serving_model(group: Group, wanted: str) -> str | None:
    """`wanted` when its index is ready; else the group's ready model (old vectors keep serving)."""
    with group_scope(group):
        ready = dict(
            EmbeddingIndex.objects.filter(status=EmbeddingIndex.Status.READY).values_list(
                "model", "ready_at"
            )
        )
    if wanted in ready:
        return wanted
    if not ready:
        return None
    default = group_embedding_model(group)
    if default in ready:
        return default
    return max(ready, key=lambda model: ready[model])
