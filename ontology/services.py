"""Write paths for the ontology. Each change and its audit Event commit together or not at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from ontology import rows
from ontology.events import EventType
from ontology.models import Connection, Event, Group, Membership, Thing, User
from ontology.properties import validate_properties
from ontology.rows import Batch
from ontology.scoping import ensure_group_allowed, group_scope
from ontology.versions import bump_group_version

logger = logging.getLogger(__name__)

_UNSET: Any = object()
MAX_AUDIT_VALUE = 200


def _audit_value(value: Any) -> Any:
    """Keep audit rows small: long strings are cut, everything else is stored as is."""
    if isinstance(value, str) and len(value) > MAX_AUDIT_VALUE:
        return value[:MAX_AUDIT_VALUE] + "…"
    return value


def event_record(
    *,
    group: Group,
    type: EventType,
    actor: User | None = None,
    target: Any = None,
    metadata: dict[str, Any] | None = None,
    batch: Batch | None = None,
) -> Event:
    """Append one audit row. Call it inside the transaction of the change it records, or
    queue it in the `batch` that writes the change (ontology.rows.Batch)."""
    type = EventType(type)  # an unknown type is a bug, not a new word in the audit trail
    target_type = target_id = target_label = ""
    if target is not None:
        target_type = target.type if isinstance(target, Thing) else target._meta.model_name
        target_id = str(target.pk)
        target_label = str(target)[:200]
    event = Event(
        group=group,
        type=type,
        actor=actor if actor is not None and actor.is_authenticated else None,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        metadata=metadata or {},
    )
    return rows.insert(event) if batch is None else batch.insert(event)


# --- Groups ------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "group"
    slug, n = base, 2
    while Group.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def group_create(
    *,
    name: str,
    actor: User | None,
    slug: str | None = None,
    type: str = Group.Type.ORGANIZATION,
    plan: str = Group.Plan.FREE,
    properties: dict[str, Any] | None = None,
    owner: User | None = None,
) -> Group:
    group = Group(
        name=name,
        slug=slug or _unique_slug(name),
        type=type,
        plan=plan,
        properties=properties or {},
    )
    group.full_clean()
    group.save()
    event_record(
        group=group,
        type=EventType.GROUP_CREATED,
        actor=actor,
        target=group,
        metadata={"plan": plan, "type": type},
    )
    if owner is not None:
        membership_create(group=group, user=owner, role=Membership.Role.OWNER, actor=actor)
    return group


@transaction.atomic
def group_update(*, group: Group, actor: User | None, **changes: Any) -> Group:
    allowed = {"name", "slug", "type", "plan", "properties"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))} on a group.")
    ensure_group_allowed(group)
    before = {key: getattr(group, key) for key in changes}
    for key, value in changes.items():
        setattr(group, key, value)
    group.full_clean()
    group.save()
    diff = {
        k: [_audit_value(before[k]), _audit_value(v)] for k, v in changes.items() if before[k] != v
    }
    if diff:
        event_record(
            group=group,
            type=EventType.GROUP_UPDATED,
            actor=actor,
            target=group,
            metadata={"changes": diff},
        )
    return group


@transaction.atomic
def group_delete(*, group: Group, actor: User | None) -> None:
    """Delete a tenant and everything it owns, its audit trail included (platform operation)."""
    # The events trigger refuses deletes unless this transaction-local flag is on.
    with db_connection.cursor() as cursor:
        cursor.execute("SET LOCAL parley.allow_event_delete = 'on'")
    logger.warning("group %s (%s) deleted by %s", group.pk, group.slug, actor)
    group.delete()


# --- Memberships -------------------------------------------------------------------


def ensure_owner_remains(membership: Membership, *, field: str) -> None:
    """Refuse to demote or remove the last owner of a group."""
    if membership.role != Membership.Role.OWNER:
        return
    with group_scope(membership.group):
        others = (
            Membership.objects.filter(role=Membership.Role.OWNER).exclude(pk=membership.pk).exists()
        )
    if not others:
        raise ValidationError({field: "A group needs at least one owner; add another owner first."})


def ensure_may_grant(*, group: Group, actor: User | None, roles: tuple[str, ...]) -> None:
    """Only owners (or the platform) may give, change or take away the owner role."""
    if Membership.Role.OWNER not in roles or actor is None or actor.is_superuser:
        return
    with group_scope(group):
        is_owner = Membership.objects.filter(user=actor, role=Membership.Role.OWNER).exists()
    if not is_owner:
        raise ValidationError({"role": "Only an owner can grant or change the owner role."})


def ensure_not_member(*, group: Group, user: User) -> None:
    with group_scope(group):
        if Membership.objects.filter(user=user).exists():
            raise ValidationError({"user": f"{user} is already a member of {group}."})


@transaction.atomic
def membership_create(
    *, group: Group, user: User, role: str = Membership.Role.MEMBER, actor: User | None
) -> Membership:
    ensure_group_allowed(group)
    ensure_may_grant(group=group, actor=actor, roles=(role,))
    membership = Membership(group=group, user=user, role=role)
    membership.full_clean(validate_unique=False, validate_constraints=False)
    ensure_not_member(group=group, user=user)
    membership.save()
    event_record(
        group=group,
        type=EventType.MEMBERSHIP_CREATED,
        actor=actor,
        target=membership,
        metadata={"user_id": user.pk, "role": role},
    )
    return membership


@transaction.atomic
def membership_update(*, membership: Membership, role: str, actor: User | None) -> Membership:
    ensure_group_allowed(membership.group)
    old_role = membership.role
    if old_role == role:
        return membership
    if role not in Membership.Role.values:
        raise ValidationError(
            {"role": f"Role must be one of: {', '.join(Membership.Role.values)}."}
        )
    ensure_may_grant(group=membership.group, actor=actor, roles=(old_role, role))
    ensure_owner_remains(membership, field="role")
    membership.role = role
    membership.save(update_fields=["role"])
    event_record(
        group=membership.group,
        type=EventType.MEMBERSHIP_UPDATED,
        actor=actor,
        target=membership,
        metadata={"user_id": membership.user_id, "role": [old_role, role]},
    )
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor: User | None) -> None:
    ensure_group_allowed(membership.group)
    ensure_may_grant(group=membership.group, actor=actor, roles=(membership.role,))
    ensure_owner_remains(membership, field="user")
    event_record(
        group=membership.group,
        type=EventType.MEMBERSHIP_DELETED,
        actor=actor,
        target=membership,
        metadata={"user_id": membership.user_id, "role": membership.role},
    )
    membership.delete()


# --- Things ---------------------------------------------------------------------------


def _configuration_changed(thing: Thing) -> None:
    """Agents are configuration that processes cache (agents.configuration)."""
    if thing.type == Thing.Type.AGENT:
        bump_group_version(thing.group_id)


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": "Name is required."})
    if len(name) > 200:
        raise ValidationError({"name": "Name must be at most 200 characters."})
    return name.strip()


CreationCheck = Callable[[Group], None]
_creation_checks: dict[str, list[CreationCheck]] = {}


def register_creation_check(thing_type: str, check: CreationCheck) -> None:
    """A later app's rule for creating a thing of this type in a group (billing registers
    the plan's agent limit in its AppConfig.ready()); it raises ValidationError to refuse."""
    _creation_checks.setdefault(thing_type, []).append(check)


@transaction.atomic
def thing_create(
    *,
    group: Group,
    type: str,
    name: str,
    actor: User | None,
    properties: dict[str, Any] | None = None,
    status: str = Thing.Status.ACTIVE,
) -> Thing:
    ensure_group_allowed(group)
    if status not in Thing.Status.values:
        raise ValidationError(
            {"status": f"Status must be one of: {', '.join(Thing.Status.values)}."}
        )
    for check in _creation_checks.get(type, ()):
        check(group)
    thing = Thing.objects.create(
        group=group,
        type=type,
        name=_validate_name(name),
        properties=validate_properties(type, properties),
        status=status,
    )
    event_record(
        group=group,
        type=EventType.for_thing(type, "created"),
        actor=actor,
        target=thing,
        metadata={"name": thing.name, "status": status},
    )
    _configuration_changed(thing)
    return thing


def _properties_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    keys = sorted(set(before) | set(after))
    return {
        k: [_audit_value(before.get(k)), _audit_value(after.get(k))]
        for k in keys
        if before.get(k) != after.get(k)
    }


@transaction.atomic
def thing_update(
    *,
    thing: Thing,
    actor: User | None,
    name: str = _UNSET,
    properties: dict[str, Any] = _UNSET,
    status: str = _UNSET,
) -> Thing:
    ensure_group_allowed(thing.group)
    changes: dict[str, Any] = {}
    if name is not _UNSET:
        name = _validate_name(name)
        if name != thing.name:
            changes["name"] = [thing.name, name]
            thing.name = name
    if status is not _UNSET and status != thing.status:
        if status not in Thing.Status.values:
            raise ValidationError(
                {"status": f"Status must be one of: {', '.join(Thing.Status.values)}."}
            )
        changes["status"] = [thing.status, status]
        thing.status = status
    if properties is not _UNSET:
        cleaned = validate_properties(thing.type, properties)
        diff = _properties_diff(thing.properties, cleaned)
        if diff:
            changes["properties"] = diff
            thing.properties = cleaned
    if not changes:
        return thing
    thing.updated_at = timezone.now()
    thing.save()
    event_record(
        group=thing.group,
        type=EventType.for_thing(thing.type, "updated"),
        actor=actor,
        target=thing,
        metadata={"changes": changes},
    )
    _configuration_changed(thing)
    return thing


@transaction.atomic
def thing_delete(*, thing: Thing, actor: User | None) -> None:
    ensure_group_allowed(thing.group)
    event_record(
        group=thing.group,
        type=EventType.for_thing(thing.type, "deleted"),
        actor=actor,
        target=thing,
        metadata={"name": thing.name},
    )
    _configuration_changed(thing)
    thing.delete()


# --- People ---------------------------------------------------------------------------


@transaction.atomic
def user_update_profile(
    *,
    user: User,
    group: Group,
    actor: User | None,
    display_name: str | None = None,
    preferences: dict[str, Any] | None = None,
) -> User:
    """Change a person's display name or preferences; audited in the group it happened in."""
    ensure_group_allowed(group)
    changes: dict[str, Any] = {}
    if display_name is not None:
        display_name = display_name.strip()
        if not display_name or len(display_name) > 150:
            raise ValidationError({"display_name": "Display name must be 1 to 150 characters."})
        if display_name != user.display_name:
            changes["display_name"] = [user.display_name, display_name]
            user.display_name = display_name
    if preferences is not None:
        if not isinstance(preferences, dict):
            raise ValidationError({"preferences": "Preferences must be an object."})
        merged = {**user.preferences, **preferences}
        if merged != user.preferences:
            changes["preferences"] = _properties_diff(user.preferences, merged)
            user.preferences = merged
    if changes:
        user.save(update_fields=["display_name", "preferences"])
        event_record(
            group=group,
            type=EventType.USER_PROFILE_UPDATED,
            actor=actor,
            target=user,
            metadata={"changes": changes},
        )
    return user


# --- Connections -------------------------------------------------------------------------


@transaction.atomic
def connection_create(
    *,
    group: Group,
    type: str,
    actor: User | None,
    from_thing: Thing | None = None,
    from_user: User | None = None,
    to_thing: Thing | None = None,
    to_user: User | None = None,
    metadata: dict[str, Any] | None = None,
) -> Connection:
    """Connect two things/users of one group; endpoints from another group are refused."""
    ensure_group_allowed(group)
    if (from_thing is None) == (from_user is None) or (to_thing is None) == (to_user is None):
        raise ValidationError("A connection needs exactly one source and exactly one target.")
    for thing in (from_thing, to_thing):
        if thing is not None and thing.group_id != group.pk:
            raise ValidationError("A connection cannot reach a thing of another group.")
    users = [u for u in (from_user, to_user) if u is not None]
    if users:
        with group_scope(group):
            members = set(
                Membership.objects.filter(user__in=users).values_list("user_id", flat=True)
            )
        if any(u.pk not in members for u in users):
            raise ValidationError("A connection can only reach members of the group.")
    conn = Connection.objects.create(
        group=group,
        type=type,
        from_thing=from_thing,
        from_user=from_user,
        to_thing=to_thing,
        to_user=to_user,
        metadata=metadata or {},
    )
    event_record(
        group=group,
        type=EventType.CONNECTION_CREATED,
        actor=actor,
        target=conn,
        metadata={"type": type},
    )
    return conn


def _client(request: Any) -> dict[str, str]:
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:MAX_AUDIT_VALUE],
    }


def user_event_record(
    *, user: User, type: EventType, request: Any = None, metadata: dict[str, Any] | None = None
) -> int:
    """Audit something that happened to a person's account (a sign-in, a new password) in
    every group they belong to: each tenant sees its members'.

    It belongs to no single tenant, and Event.group is required; writing it to each of
    the person's groups keeps every tenant's trail complete and private.
    """
    groups = list(Group.objects.filter(memberships__user=user))
    with transaction.atomic():
        for group in groups:
            event_record(
                group=group,
                type=type,
                actor=user,
                target=user,
                metadata={**_client(request), **(metadata or {})},
            )
    return len(groups)


def login_record(*, user: User, request: Any = None) -> int:
    """Audit a sign-in in every group the person belongs to."""
    return user_event_record(user=user, type=EventType.AUTH_LOGIN, request=request)


def login_failure_record(*, username: str, request: Any = None) -> int:
    """Audit a failed sign-in in the groups of the account it named, if that account exists.

    A failure naming no account has no tenant to belong to; it is logged, not audited.
    """
    user = User.objects.filter(username__iexact=username.strip()).first() if username else None
    if user is None:
        logger.info("failed sign-in for an unknown username from %s", _client(request).get("ip"))
        return 0
    groups = list(Group.objects.filter(memberships__user=user))
    with transaction.atomic():
        for group in groups:
            event_record(
                group=group,
                type=EventType.AUTH_LOGIN_FAILED,
                actor=None,
                target=user,
                metadata=_client(request),
            )
    return len(groups)
