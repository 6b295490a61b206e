"""Bringing people into a group: invitations by email, with a role.

An owner or admin invites an address (only owners may invite owners, as in the admin). The
invitee gets a link; its secret is stored only as a SHA-256, and resending makes a new one,
so an old email stops working. The link works until it expires
(PARLEY_INVITATION_DAYS), is revoked, or is used once:

* someone with no account sets a name and a password and lands in the group;
* someone who already has an account (the address they were invited at) signs in and
  joins with one click.

Each step is audited in the group: invitation.created, .resent, .revoked, .accepted (with
the membership.created it makes).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from ontology.events import EventType
from ontology.models import Group, Invitation, Membership, User
from ontology.scoping import group_scope, scopes_disabled
from ontology.services import ensure_may_grant, event_record, membership_create
from ontology.tokens import digest_of

SECRET_BYTES = 32
MAX_PENDING_PER_GROUP = 200


def _lifetime() -> timedelta:
    return timedelta(days=settings.PARLEY_INVITATION_DAYS)


def _clean_email(email: str) -> str:
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    return BaseUserManager.normalize_email(email)  # the domain in lower case


def _clean_role(role: str) -> str:
    if role not in Membership.Role.values:
        roles = ", ".join(Membership.Role.values)
        raise ValidationError({"role": f"Role must be one of: {roles}."})
    return role


def _send(invitation: Invitation, secret: str, *, link_base: str) -> None:
    """Email the link once the invitation is committed (a rolled-back one sends nothing)."""
    link = f"{link_base.rstrip('/')}/invitations/{secret}/"
    context = {"invitation": invitation, "group": invitation.group, "link": link}
    subject = f"You are invited to {invitation.group.name} on Parley"
    body = render_to_string("ontology/emails/invitation.txt", context)
    email = invitation.email
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))


# --- reads ---------------------------------------------------------------------------------


def pending_invitations(*, group: Group) -> list[Invitation]:
    """The group's invitations not yet used or revoked (expired ones included, to resend)."""
    with group_scope(group):
        return list(
            Invitation.objects.filter(accepted_at=None, revoked_at=None).select_related(
                "invited_by"
            )
        )


def invitation_for_manage(*, group: Group, invitation_id: int) -> Invitation | None:
    with group_scope(group):
        return (
            Invitation.objects.filter(pk=invitation_id, accepted_at=None, revoked_at=None)
            .select_related("group")
            .first()
        )


def invitation_for_secret(secret: str) -> Invitation | None:
    """The usable invitation a link names, or None (unknown, used, revoked, expired alike).

    A link is the only key an invitee holds, before they belong to any group, so this one
    read is outside any group's scope; what it returns names its group."""
    if not secret or len(secret) > 100:
        return None
    with scopes_disabled():
        invitation = (
            Invitation.objects.filter(digest=digest_of(secret)).select_related("group").first()
        )
    if invitation is None or not invitation.usable:
        return None
    return invitation


def account_for(invitation: Invitation) -> User | None:
    """The account already registered at the invited address, if any."""
    return User.objects.filter(email__iexact=invitation.email, is_active=True).first()


# --- writes --------------------------------------------------------------------------------


def invitation_create(
    *, group: Group, email: str, role: str, actor: User, link_base: str
) -> Invitation:
    """Invite `email` to `group` as `role` and send the link (links start with `link_base`,
    the site's address as the inviter reached it)."""
    email, role = _clean_email(email), _clean_role(role)
    ensure_may_grant(group=group, actor=actor, roles=(role,))
    with transaction.atomic(), group_scope(group):
        if Membership.objects.filter(user__email__iexact=email).exists():
            raise ValidationError({"email": f"{email} is already a member of {group.name}."})
        if Invitation.objects.filter(accepted_at=None, revoked_at=None).count() >= (
            MAX_PENDING_PER_GROUP
        ):
            raise ValidationError(
                f"{group.name} has {MAX_PENDING_PER_GROUP} open invitations; revoke some first."
            )
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = timezone.now()
        try:
            with transaction.atomic():
                invitation = Invitation.objects.create(
                    group=group,
                    email=email,
                    role=role,
                    digest=digest_of(secret),
                    invited_by=actor,
                    sent_at=now,
                    expires_at=now + _lifetime(),
                )
        except IntegrityError:
            raise ValidationError(
                {"email": f"{email} is already invited: resend or revoke that invitation."}
            ) from None
        event_record(
            group=group,
            type=EventType.INVITATION_CREATED,
            actor=actor,
            target=invitation,
            metadata={"email": email, "role": role},
        )
        _send(invitation, secret, link_base=link_base)
    return invitation


def invitation_resend(*, invitation: Invitation, actor: User, link_base: str) -> Invitation:
    """A new link (the old one stops working) with a fresh expiry, sent again."""
    ensure_may_grant(group=invitation.group, actor=actor, roles=(invitation.role,))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    now = timezone.now()
    with transaction.atomic(), group_scope(invitation.group):
        invitation.digest = digest_of(secret)
        invitation.sent_at = now
        invitation.expires_at = now + _lifetime()
        invitation.send_count += 1
        invitation.save(update_fields=["digest", "sent_at", "expires_at", "send_count"])
        event_record(
            group=invitation.group,
            type=EventType.INVITATION_RESENT,
            actor=actor,
            target=invitation,
            metadata={"email": invitation.email, "send_count": invitation.send_count},
        )
        _send(invitation, secret, link_base=link_base)
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    ensure_may_grant(group=invitation.group, actor=actor, roles=(invitation.role,))
    with transaction.atomic(), group_scope(invitation.group):
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        event_record(
            group=invitation.group,
            type=EventType.INVITATION_REVOKED,
            actor=actor,
            target=invitation,
            metadata={"email": invitation.email},
        )
    return invitation


def _accept(invitation: Invitation, user: User) -> Membership:
    """Use the invitation (locked, so one link makes one membership) for `user`."""
    with group_scope(invitation.group):
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not locked.usable:
            raise ValidationError("This invitation is no longer valid.")
        if Membership.objects.filter(user=user).exists():
            raise ValidationError(f"You are already a member of {invitation.group.name}.")
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        # The inviter's right to grant the role was checked when they invited.
        membership = membership_create(
            group=invitation.group, user=user, role=locked.role, actor=None
        )
        event_record(
            group=invitation.group,
            type=EventType.INVITATION_ACCEPTED,
            actor=user,
            target=locked,
            metadata={"email": locked.email, "user_id": user.pk, "role": locked.role},
        )
    return membership


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """An existing, signed-in account joins: it must be the address that was invited."""
    if (user.email or "").lower() != invitation.email.lower():
        raise ValidationError(
            f"This invitation is for {invitation.email}; sign in with that account to accept it."
        )
    return _accept(invitation, user)


@transaction.atomic
def invitation_accept_new_user(*, invitation: Invitation, display_name: str, password: str) -> User:
    """Make the account the invitation is for, with its password, and join the group."""
    if account_for(invitation) is not None:
        raise ValidationError("An account with this address exists: sign in to accept.")
    display_name = (display_name or "").strip()
    if not display_name or len(display_name) > 150:
        raise ValidationError({"display_name": "Enter your name (at most 150 characters)."})
    user = User(username=invitation.email, email=invitation.email, display_name=display_name)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None
    if User.objects.filter(username__iexact=invitation.email).exists():
        raise ValidationError("An account with this address exists: sign in to accept.")
    user.set_password(password)
    user.save()
    _accept(invitation, user)
    return user
