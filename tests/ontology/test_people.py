"""People: invitations from the Members page to a joined account, the Members page's role
rules, the profile, other sessions signed out, password change and reset by email."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ontology.models import Event, Invitation, Membership, User
from ontology.scoping import group_scope, scopes_disabled
from tests.conftest import make_tenant, make_user

# Invitation emails go out on commit.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clear_cache")]

LINK = re.compile(r"http://testserver(/invitations/[^/\s]+/)")
RESET = re.compile(r"http://testserver(/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def alpha():
    return make_tenant("alpha")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def invite(client: Client, email: str, role: str = "member"):
    return client.post(reverse("member-invite"), {"email": email, "role": role}, follow=True)


def last_link() -> str:
    return LINK.search(mail.outbox[-1].body).group(1)


def change_password(client: Client, old: str):
    new = "another long one 7"
    fields = {"old_password": old, "new_password1": new, "new_password2": new}
    return client.post(reverse("password-change"), fields)


def events(group, kind: str) -> list[Event]:
    with group_scope(group):
        return list(Event.objects.filter(type=kind))


def test_an_invited_newcomer_sets_a_password_and_lands_in_the_group(alpha):
    page = invite(signed_in(alpha.owner), "New.Person@Example.COM", "admin")
    assert "Invitation sent to New.Person@example.com." in page.content.decode()
    assert mail.outbox[-1].to == ["New.Person@example.com"]
    assert "Alpha Inc" in mail.outbox[-1].subject
    link = last_link()

    visitor = Client()
    form = visitor.get(link)
    assert form.status_code == 200 and b"Create account and join" in form.content
    refused = visitor.post(
        link, {"display_name": "Nia", "password": "short", "password_again": "short"}
    )
    assert b"too short" in refused.content and not User.objects.filter(display_name="Nia")
    joined = visitor.post(
        link,
        {"display_name": "Nia", "password": "a long pass 42!", "password_again": "a long pass 42!"},
    )
    assert joined.status_code == 302 and joined["Location"] == reverse("home")
    user = User.objects.get(email="New.Person@example.com")
    assert user.display_name == "Nia" and user.check_password("a long pass 42!")
    with group_scope(alpha.group):
        assert Membership.objects.get(user=user).role == "admin"
        invitation = Invitation.objects.get()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    assert visitor.get(reverse("thread-list")).status_code == 200  # signed in, in the group
    assert [e.actor for e in events(alpha.group, "invitation.accepted")] == [user]
    assert len(events(alpha.group, "invitation.created")) == 1

    again = Client().get(link)  # used once: gone
    assert again.status_code == 404 and b"not valid" in again.content


def test_expired_revoked_and_replaced_links_all_get_the_same_404(alpha):
    owner = signed_in(alpha.owner)
    invite(owner, "late@example.com")
    expired = last_link()
    with group_scope(alpha.group):
        invitation = Invitation.objects.get()
    with group_scope(alpha.group):
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    gone = Client().get(expired)
    assert gone.status_code == 404

    owner.post(reverse("invitation-resend", args=[invitation.pk]))
    fresh = last_link()
    assert fresh != expired and Client().get(expired).content == gone.content
    assert Client().get(fresh).status_code == 200
    invitation.refresh_from_db()
    assert invitation.send_count == 2 and invitation.usable

    owner.post(reverse("invitation-revoke", args=[invitation.pk]))
    assert Client().get(fresh).content == gone.content
    assert Client().get("/invitations/made-up/").content == gone.content
    assert len(events(alpha.group, "invitation.resent")) == 1
    assert len(events(alpha.group, "invitation.revoked")) == 1


def test_someone_with_an_account_joins_a_second_group_with_one_click(alpha):
    bravo = make_tenant("bravo")
    invite(signed_in(alpha.owner), bravo.member.email)
    link = last_link()
    anonymous = Client().get(link)
    assert b"Sign in to accept" in anonymous.content  # no second account for the address

    stranger = signed_in(alpha.member)
    assert b"sign out" in stranger.get(link).content.lower()
    stranger.post(link)
    with group_scope(alpha.group):
        assert not Membership.objects.filter(user=bravo.member).exists()

    invitee = signed_in(bravo.member)
    assert b"Join Alpha Inc" in invitee.get(link).content
    joined = invitee.post(link)
    assert joined.status_code == 302
    with group_scope(alpha.group):
        assert Membership.objects.get(user=bravo.member).role == "member"
    with group_scope(bravo.group):
        assert Membership.objects.filter(user=bravo.member).exists()  # still in bravo too
    assert invitee.get(reverse("thread-list")).context["active_group"] == alpha.group


def test_invitations_follow_the_owner_rules_and_refuse_what_makes_no_sense(alpha):
    admin = make_user("admin@alpha.example")
    with scopes_disabled():
        Membership.objects.create(group=alpha.group, user=admin, role="admin")
    as_admin = signed_in(admin)
    refused = invite(as_admin, "boss@example.com", "owner")
    assert "Only an owner can grant" in refused.content.decode()
    assert "already a member" in invite(as_admin, alpha.member.email).content.decode()
    assert "valid email" in invite(as_admin, "not-an-address").content.decode()
    invite(as_admin, "twice@example.com")
    assert "already invited" in invite(as_admin, "TWICE@example.com").content.decode()
    assert (
        "Invitation sent"
        in invite(signed_in(alpha.owner), "boss@example.com", "owner").content.decode()
    )
    with group_scope(alpha.group):
        assert sorted(Invitation.objects.values_list("email", "role")) == [
            ("boss@example.com", "owner"),
            ("twice@example.com", "member"),
        ]
    # A member cannot reach the page; another group's owner cannot touch these invitations.
    assert signed_in(alpha.member).get(reverse("members")).status_code == 403
    bravo = make_tenant("bravo")
    with group_scope(alpha.group):
        invitation = Invitation.objects.get(email="twice@example.com")
    outsider = signed_in(bravo.owner)
    assert outsider.post(reverse("invitation-revoke", args=[invitation.pk])).status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_the_members_page_changes_roles_and_removes_people_but_keeps_an_owner(alpha):
    owner = signed_in(alpha.owner)
    page = owner.get(reverse("members"))
    assert alpha.member.email in page.content.decode()
    with group_scope(alpha.group):
        mine = Membership.objects.get(user=alpha.owner)
        theirs = Membership.objects.get(user=alpha.member)
    last = owner.post(reverse("member-role", args=[mine.pk]), {"role": "member"}, follow=True)
    assert "at least one owner" in last.content.decode()
    owner.post(reverse("member-role", args=[theirs.pk]), {"role": "admin"})
    theirs.refresh_from_db()
    assert theirs.role == "admin"
    owner.post(reverse("member-remove", args=[theirs.pk]))
    with group_scope(alpha.group):
        assert not Membership.objects.filter(user=alpha.member).exists()
    assert [e.type for e in events(alpha.group, "membership.deleted")] == ["membership.deleted"]


def test_the_profile_keeps_name_theme_and_default_agent_of_ones_own_group(alpha):
    bravo = make_tenant("bravo")
    client = signed_in(alpha.member)
    assert client.get(reverse("profile")).status_code == 200
    foreign = client.post(
        reverse("profile"),
        {"display_name": "Mo", "theme": "dark", "default_agent": str(bravo.agent.pk)},
    )
    assert b"Pick one of your organisation" in foreign.content
    saved = client.post(
        reverse("profile"),
        {"display_name": "Mo", "theme": "dark", "default_agent": str(alpha.agent.pk)},
    )
    assert saved.status_code == 302
    alpha.member.refresh_from_db()
    assert alpha.member.display_name == "Mo"
    assert alpha.member.preferences["theme"] == "dark"
    assert alpha.member.preferences["default_agents"] == {str(alpha.group.pk): alpha.agent.pk}
    assert client.get(reverse("profile")).context["theme"] == "dark"  # every page's <html>
    assert len(events(alpha.group, "user.profile_updated")) == 1


def test_signing_out_other_sessions_keeps_this_one(alpha):
    here, there = Client(), Client()
    for client in (here, there):
        assert client.login(username=alpha.member.username, password="pw-" + alpha.member.username)
    assert there.get(reverse("profile")).status_code == 200
    here.post(reverse("sessions-end"))
    assert here.get(reverse("profile")).status_code == 200
    assert there.get(reverse("profile")).status_code == 302  # to the login page
    assert len(events(alpha.group, "user.sessions_ended")) == 1


def test_a_password_change_is_audited_and_ends_other_sessions(alpha):
    password = "pw-" + alpha.member.username
    here, there = Client(), Client()
    for client in (here, there):
        client.login(username=alpha.member.username, password=password)
    changed = change_password(here, password)
    assert changed.status_code == 302 and changed["Location"] == reverse("profile")
    assert here.get(reverse("profile")).status_code == 200
    assert there.get(reverse("profile")).status_code == 302
    assert len(events(alpha.group, "user.password_changed")) == 1


def test_a_password_change_is_audited_in_every_group_of_a_person_in_two(alpha):
    """The page runs in one group's scope; the audit row goes to each of the person's
    groups all the same (an account belongs to no single tenant)."""
    beta = make_tenant("beta")
    Membership.objects.create(group=beta.group, user=alpha.member, role=Membership.Role.MEMBER)
    password = "pw-" + alpha.member.username
    client = Client()
    client.login(username=alpha.member.username, password=password)
    changed = change_password(client, password)
    assert changed.status_code == 302
    for tenant in (alpha, beta):
        assert len(events(tenant.group, "user.password_changed")) == 1
        assert len(events(tenant.group, "auth.login")) == 1


def test_a_forgotten_password_is_reset_by_email(alpha):
    client = Client()
    sent = client.post(reverse("password_reset"), {"email": alpha.member.email})
    assert sent.status_code == 302
    link = RESET.search(mail.outbox[-1].body).group(1)
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "fresh horse 99 battery", "new_password2": "fresh horse 99 battery"},
    )
    assert done.status_code == 302
    alpha.member.refresh_from_db()
    assert alpha.member.check_password("fresh horse 99 battery")
    assert len(events(alpha.group, "user.password_reset")) == 1
    assert Client().get(link, follow=True).context["validlink"] is False  # used once
    nobody = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert nobody.status_code == 302 and len(mail.outbox) == 1  # says nothing either way


def test_an_invitation_expires_after_the_configured_days(alpha, settings):
    settings.PARLEY_INVITATION_DAYS = 2
    invite(signed_in(alpha.owner), "soon@example.com")
    with group_scope(alpha.group):
        invitation = Invitation.objects.get()
    lifetime = invitation.expires_at - invitation.sent_at
    assert timedelta(days=2) - timedelta(seconds=1) < lifetime <= timedelta(days=2)


def test_new_chats_start_with_the_default_agent_while_it_is_the_groups(alpha):
    from ontology import services
    from ontology.models import Thing

    second = services.thing_create(
        group=alpha.group,
        type=Thing.Type.AGENT,
        name="Second",
        properties={"provider": "openai", "model": "gpt-4o-mini"},
        actor=alpha.owner,
    )
    client = signed_in(alpha.member)
    first_choice = client.get(reverse("thread-list"))
    assert first_choice.context["chosen_agent_id"] == alpha.agent.pk  # the first, by default
    client.post(
        reverse("profile"),
        {"display_name": "Mo", "theme": "system", "default_agent": str(second.pk)},
    )
    page = client.get(reverse("thread-list"))
    assert page.context["chosen_agent_id"] == second.pk
    assert f'value="{second.pk}" checked' in page.content.decode()
    services.thing_update(thing=second, actor=alpha.owner, status=Thing.Status.DISABLED)
    assert client.get(reverse("thread-list")).context["chosen_agent_id"] == alpha.agent.pk
