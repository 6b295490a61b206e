"""A conversation as a tree of messages, and the branch of it that is shown.

Every message but the first has a parent: a question the message it was asked after, an
answer its question. Editing a question adds a sibling question (same parent), and
regenerating an answer a sibling answer, so nothing is thrown away. At each branch point
the sibling chosen last (`selected_at`: made, or switched to) is shown, and the path
goes on from it by the same rule, so each branch keeps the choices made inside it.

The path (root to leaf) is what a reader sees, what the model is sent, what exports
and the API list; `< 2/3 >` on a message moves between its siblings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Node:
    id: Any
    parent_id: Any
    selected_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Step:
    """One message of the path and where it stands among its siblings (1-based)."""

    id: Any
    siblings: tuple[Any, ...]  # every sibling's id, oldest first, itself included

    @property
    def position(self) -> int:
        return self.siblings.index(self.id) + 1

    def neighbour(self, offset: int) -> Any | None:
        index = self.siblings.index(self.id) + offset
        return self.siblings[index] if 0 <= index < len(self.siblings) else None

    @property
    def previous(self) -> Any | None:
        return self.neighbour(-1)

    @property
    def next(self) -> Any | None:
        return self.neighbour(1)


def _children(nodes: Iterable[Node]) -> dict[Any, list[Node]]:
    children: dict[Any, list[Node]] = defaultdict(list)
    for node in nodes:
        children[node.parent_id].append(node)
    for kin in children.values():
        kin.sort(key=lambda n: (n.created_at, str(n.id)))
    return children


def _chosen(kin: list[Node]) -> Node:
    return max(kin, key=lambda n: (n.selected_at, n.created_at, str(n.id)))


def active_path(nodes: Iterable[Node]) -> list[Step]:
    """The shown branch, root first."""
    children = _children(nodes)
    path: list[Step] = []
    parent = None
    while children.get(parent):
        kin = children[parent]
        node = _chosen(kin)
        path.append(Step(node.id, tuple(n.id for n in kin)))
        parent = node.id
    return path
