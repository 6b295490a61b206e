"""Read paths for the ontology. Tenant-owned reads go through the scoped managers."""

from __future__ import annotations

from django.db.models import F, QuerySet

from ontology.models import Group, Membership, Thing, User


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
