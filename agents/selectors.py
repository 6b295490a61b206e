"""Read paths for agents: knowledge search (full text until vector retrieval lands)."""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F

from agents.models import Knowledge
from ontology.models import Group


def _any_word_query(text: str) -> SearchQuery | None:
    """Match passages sharing any word with a natural-language question, best first.

    websearch/plain queries AND every word, so "How many days for refunds?" would
    miss a passage without "many". Words are letters and digits only: the raw query is safe.
    """
    words = list(dict.fromkeys(re.findall(r"\w+", text.lower())))[:64]
    if not words:
        return None
    return SearchQuery(" | ".join(words), search_type="raw", config="english")


def search_knowledge(*, group: Group, query: str, limit: int = 5) -> list[Knowledge]:
    """The group's passages best matching `query`, each with a `score`."""
    search = _any_word_query(query)
    if search is None:
        return []
    hits = (
        Knowledge.objects.filter(group=group, search_vector=search)
        .annotate(score=SearchRank(F("search_vector"), search))
        .order_by("-score", "id")[:limit]
    )
    return list(hits)
