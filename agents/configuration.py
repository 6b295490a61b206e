"""A group's agents and provider keys, cached in each process and validated per use.

The agent loop needs an agent's properties and the group's keys before it can
send the first request; reading them from Postgres on every turn costs more
than the platform's whole latency budget. They change rarely, so each process
keeps them and checks the group's version token (one Redis GET) instead.
Services bump the token whenever an agent or a key changes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from agents.models import Agent
from agents.properties import AGENT_DEFAULTS
from agents.providers.registry import StoredCredential, stored_credentials
from ontology.models import Group
from ontology.scoping import group_scope
from ontology.versions import group_version

MAX_GROUPS = 1000


@dataclass(frozen=True)
class AgentConfig:
    id: int
    name: str
    active: bool
    properties: dict[str, Any]


@dataclass(frozen=True)
class GroupConfiguration:
    version: str
    agents: dict[int, AgentConfig] = field(default_factory=dict)
    credentials: dict[str, StoredCredential] = field(default_factory=dict)


_cache: OrderedDict[int, GroupConfiguration] = OrderedDict()
_lock = Lock()


def _load(group: Group, version: str) -> GroupConfiguration:
    with group_scope(group):
        agents = {
            pk: AgentConfig(pk, name, status == Agent.Status.ACTIVE, {**AGENT_DEFAULTS, **props})
            for pk, name, status, props in Agent.objects.values_list(
                "pk", "name", "status", "properties"
            )
        }
    return GroupConfiguration(version, agents, stored_credentials(group))


def group_configuration(group: Group) -> GroupConfiguration:
    """The group's agents and keys as of now (sync: call from a DB thread)."""
    version = group_version(group.pk)
    with _lock:
        cached = _cache.get(group.pk)
        if cached is not None and cached.version == version:
            _cache.move_to_end(group.pk)
            return cached
    loaded = _load(group, version)
    with _lock:
        _cache[group.pk] = loaded
        _cache.move_to_end(group.pk)
        while len(_cache) > MAX_GROUPS:
            _cache.popitem(last=False)
    return loaded


def cached_configuration(group_id: int, version: str) -> GroupConfiguration | None:
    """The configuration this process holds for the group if it is of `version` (read by
    the caller, e.g. ontology.versions.agroup_version from the event loop); no I/O."""
    with _lock:
        cached = _cache.get(group_id)
        if cached is None or cached.version != version:
            return None
        _cache.move_to_end(group_id)
        return cached


def forget_cached_configurations() -> None:
    """Drop this process's cache (tests; or an operator after editing rows by hand)."""
    with _lock:
        _cache.clear()
