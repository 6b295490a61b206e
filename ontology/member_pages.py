"""The Members page, outside the admin, for a group's owners and admins: who is in the
organisation (role, last active), changing a role, removing someone, and inviting people
by email (ontology/invitations.py). The owner rules are the admin's (ontology/services.py):
only owners grant, change or remove the owner role, and a group keeps at least one owner.

Every write is a POST that answers with a redirect to the page and a sentence saying what
happened or why not. Sending an invitation counts in the "invite" rate bucket
(applied in config/urls.py: ontology sits below billing)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ontology import invitations, services
from ontology.access import manager_required
from ontology.models import Membership
from ontology.scoping import group_scope


def _sentence(error: ValidationError) -> str:
    return " ".join(error.messages)


def _link_base(request: HttpRequest) -> str:
    """The site's address as the inviter reached it: where the invitee's link points."""
    return request.build_absolute_uri("/")


def _membership(request: HttpRequest, membership_id: int) -> Membership:
    with group_scope(request.group):
        membership = (
            Membership.objects.select_related("user", "group").filter(pk=membership_id).first()
        )
    if membership is None:
        raise Http404("No such member.")
    return membership


@manager_required
def member_list(request: HttpRequest) -> HttpResponse:
    group = request.group
    with group_scope(group):
        members = list(
            Membership.objects.select_related("user").order_by("user__display_name", "user__email")
        )
    return render(
        request,
        "ontology/members.html",
        {
            "members": members,
            "invitations": invitations.pending_invitations(group=group),
            "roles": Membership.Role.choices,
            "is_owner": group.role == Membership.Role.OWNER or request.user.is_superuser,
        },
    )


@manager_required
@require_POST
def invite(request: HttpRequest) -> HttpResponse:
    email = request.POST.get("email", "")
    try:
        invitation = invitations.invitation_create(
            group=request.group,
            email=email,
            role=request.POST.get("role", Membership.Role.MEMBER),
            actor=request.user,
            link_base=_link_base(request),
        )
    except ValidationError as error:
        flash.error(request, _sentence(error))
    else:
        flash.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("members")


@manager_required
@require_POST
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = invitations.invitation_for_manage(group=request.group, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    try:
        invitations.invitation_resend(
            invitation=invitation, actor=request.user, link_base=_link_base(request)
        )
    except ValidationError as error:
        flash.error(request, _sentence(error))
    else:
        flash.success(request, f"Invitation sent to {invitation.email} again, with a new link.")
    return redirect("members")


@manager_required
@require_POST
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = invitations.invitation_for_manage(group=request.group, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    try:
        invitations.invitation_revoke(invitation=invitation, actor=request.user)
    except ValidationError as error:
        flash.error(request, _sentence(error))
    else:
        flash.success(request, f"The invitation to {invitation.email} is revoked.")
    return redirect("members")


@manager_required
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    try:
        services.membership_update(
            membership=membership, role=request.POST.get("role", ""), actor=request.user
        )
    except ValidationError as error:
        flash.error(request, _sentence(error))
    else:
        flash.success(request, f"{membership.user} is now {membership.get_role_display().lower()}.")
    return redirect("members")


@manager_required
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    try:
        services.membership_delete(membership=membership, actor=request.user)
    except ValidationError as error:
        flash.error(request, _sentence(error))
        return redirect("members")
    flash.success(request, f"{membership.user} is no longer in {request.group.name}.")
    if membership.user_id == request.user.pk:
        return redirect("home")  # removed themselves: this page is no longer theirs
    return redirect("members")
