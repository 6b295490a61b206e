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


class GroupSet(frozenset):
    """Several active groups at once (a tenant admin's groups in the admin): ids only."""


_active_group: ContextVar[Group | GroupSet | _Disabled | None] = ContextVar(
    "parley_active_group", default=None
)


@contextmanager
def group_scope(*groups: Group) -> Iterator[Group | None]:
    """Make `groups` the active tenants for the code inside the block.

    One group is the usual case (a request, a socket, a task) and is what the block
    yields; several (the admin, for a user who administers more than one) filter with
    `group__in`, as django-scopes does. None at all is allowed and sees nothing.
    """
    for group in groups:
        if group is None or group.pk is None:
            raise ScopeError("group_scope() needs saved Groups.")
    scope = groups[0] if len(groups) == 1 else GroupSet(group.pk for group in groups)
    token = _active_group.set(scope)
    try:
        yield groups[0] if len(groups) == 1 else None
    finally:
        _active_group.reset(token)


@contextmanager
def scopes_disabled() -> Iterator[None]:
    """Escape hatch: tenant managers return every tenant's rows inside this block.

    Only for superusers in the admin, migrations and platform jobs, which filter by
    group themselves.
    """
    token = _active_group.set(_DISABLED)
    try:
        yield
    finally:
        _active_group.reset(token)


def active_group() -> Group | None:
    """The active group when exactly one is; None with several, none, or scopes disabled."""
    current = _active_group.get()
    return (
        current if current is not None and not isinstance(current, _Disabled | GroupSet) else None
    )


def ensure_group_allowed(group: Group) -> None:
    """Refuse a write to `group` while it is not one of the active groups."""
    current = _active_group.get()
    if isinstance(current, GroupSet):
        allowed = group.pk in current
    else:
        allowed = current is None or current is _DISABLED or current.pk == group.pk
    if not allowed:
        raise ScopeError(f"Write to group {group.pk} refused outside the active groups' scope.")


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
        if isinstance(current, GroupSet):
            return super().get_queryset().filter(group_id__in=current)
        return super().get_queryset().filter(group=current)
