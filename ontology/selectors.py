"""Read paths for the ontology. Tenant-owned reads go through the scoped managers."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import F, QuerySet
from django.utils import timezone

from ontology.models import Event, Group, Membership, Thing, User


def groups_for_user(*, user: User) -> QuerySet[Group]:
    """The user's groups, each annotated with `role`. Groups are not tenant-owned rows."""
    if not user.is_authenticated:
        return Group.objects.none()
    return (
        Group.objects.filter(memberships__user=user)
        .annotate(role=F("memberships__role"))
        .order_by("name")
    )


def group_for_user(*, user: User, group_id: int | str) -> Group | None:
    """The group with this id if the user belongs to it; None for missing and forbidden alike."""
    try:
        return groups_for_user(user=user).get(pk=int(group_id))
    except (Group.DoesNotExist, TypeError, ValueError):
        return None


def admin_group_ids(*, user: User) -> set[int]:
    """Ids of the groups this user may administer (owner or admin role)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    return set(
        Group.objects.filter(
            memberships__user=user, memberships__role__in=Membership.ADMIN_ROLES
        ).values_list("pk", flat=True)
    )


def things_for_group(*, group: Group, type: str, active_only: bool = True) -> QuerySet[Thing]:
    things = Thing.objects.filter(group=group, type=type)
    if active_only:
        things = things.filter(status=Thing.Status.ACTIVE)
    return things.order_by("name")


def events_for_group(
    *,
    group: Group,
    type: str = "",
    actor_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> QuerySet[Event]:
    """The group's audit trail, newest first, narrowed by type, actor and days (inclusive)."""
    events = Event.objects.filter(group=group)
    if type:
        events = events.filter(type=type)
    if actor_id:
        events = events.filter(actor_id=actor_id)
    tz = timezone.get_current_timezone()
    if start:
        events = events.filter(timestamp__gte=datetime.combine(start, time.min, tzinfo=tz))
    if end:
        next_day = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
        events = events.filter(timestamp__lt=next_day)
    return events.select_related("actor").order_by("-timestamp", "-id")


def event_types(*, group: Group) -> list[str]:
    return list(
        Event.objects.filter(group=group).order_by("type").values_list("type", flat=True).distinct()
    )
