"""Tenant scoping that fails closed (the django-scopes pattern, in one small module).

The active group lives in a ContextVar, so it follows a request through sync
and async code (asgiref copies the context into `sync_to_async` threads) and
into asyncio tasks. It is set once at the edge (middleware, consumer connect,
task start) with `group_scope(group)`.

Every tenant-owned model uses `TenantManager`: inside a scope its querysets are
filtered to the active group; outside one they raise `ScopeError` when
evaluated, instead of returning every tenant's rows.

`scopes_disabled()` is the one escape hatch, for the admin (which filters by
the user's groups itself), migrations and platform jobs. Grep for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from ontology.models import Group


class ScopeError(RuntimeError):
    """A tenant-owned query ran with no active group."""


class _Disabled:
    def __repr__(self) -> str:
        return "<scopes disabled>"


_DISABLED = _Disabled()
_active_group: ContextVar[Group | _Disabled | None] = ContextVar(
    "parley_active_group", default=None
)


@contextmanager
def group_scope(group: Group) -> Iterator[Group]:
    """Make `group` the active tenant for the code inside the block."""
    if group is None or group.pk is None:
        raise ScopeError("group_scope() needs a saved Group.")
    token = _active_group.set(group)
    try:
        yield group
    finally:
        _active_group.reset(token)


@contextmanager
def scopes_disabled() -> Iterator[None]:
    """Escape hatch: tenant managers return every tenant's rows inside this block.

    Only for the admin, migrations and platform jobs, which filter by group themselves.
    """
    token = _active_group.set(_DISABLED)
    try:
        yield
    finally:
        _active_group.reset(token)


def active_group() -> Group | None:
    """The active group, or None when there is none or scopes are disabled."""
    current = _active_group.get()
    return None if current is None or current is _DISABLED else current


def ensure_group_allowed(group: Group) -> None:
    """Refuse a write to `group` while a different group is active."""
    current = active_group()
    if current is not None and current.pk != group.pk:
        raise ScopeError(
            f"Write to group {group.pk} refused inside the scope of group {current.pk}."
        )


class UnscopedQuerySet(models.QuerySet):
    """What a tenant manager hands out with no active group: it refuses to run."""

    def _refuse(self, *args, **kwargs):
        raise ScopeError(
            f"{self.model.__name__} is tenant-owned and was queried with no active group. "
            "Resolve the group at the edge with group_scope(group); "
            "admin and platform jobs use scopes_disabled()."
        )

    _fetch_all = _refuse
    count = _refuse
    exists = _refuse
    aggregate = _refuse
    get = _refuse
    update = _refuse
    delete = _refuse
    iterator = _refuse
    in_bulk = _refuse
    explain = _refuse
    contains = _refuse
    _update = _refuse
    aiterator = _refuse

    def resolve_expression(self, *args, **kwargs):
        # Used as a subquery (pk__in=...), it would compile without the group filter.
        self._refuse()


class TenantManager(models.Manager):
    """Default manager of every tenant-owned model: filters by the active group, fails closed."""

    def get_queryset(self) -> models.QuerySet:
        current = _active_group.get()
        if current is _DISABLED:
            return super().get_queryset()
        if current is None:
            return UnscopedQuerySet(model=self.model, using=self._db, hints=self._hints)
        return super().get_queryset().filter(group=current)
