"""API tokens: the secret shown once and stored as a hash, what ends a token, the audit
trail, and the settings page's rules (one's own tokens; owners and admins see the group's)."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ontology import services, tokens
from ontology.models import ApiToken, Event, Membership
from ontology.scoping import group_scope, scopes_disabled

pytestmark = pytest.mark.django_db


def make_token(tenant, user=None, scopes=("chat", "read"), **kwargs):
    user = user or tenant.member
    return tokens.token_create(
        group=tenant.group, user=user, name="CI bot", scopes=scopes, actor=user, **kwargs
    )


def events(group, type):
    with group_scope(group):
        return list(Event.objects.filter(type=type))


def test_the_secret_is_recognisable_and_only_its_hash_is_stored(tenant_a):
    token, secret = make_token(tenant_a)
    assert re.fullmatch(r"prl_[0-9A-Za-z]{40}", secret)
    with group_scope(tenant_a.group):
        row = ApiToken.objects.values().get(pk=token.pk)
    assert secret not in str(row)  # no column holds the secret
    assert row["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:12] and secret.startswith(row["prefix"])
    (created,) = events(tenant_a.group, "api_token.created")
    assert created.metadata["scopes"] == ["chat", "read"] and created.target_id == str(token.pk)


def test_a_token_speaks_for_its_user_in_its_group_and_its_first_use_is_audited(tenant_a):
    token, secret = make_token(tenant_a)
    access = tokens.authenticate(secret)
    assert (access.user, access.group, access.group.role) == (
        tenant_a.member,
        tenant_a.group,
        Membership.Role.MEMBER,
    )
    assert access.allows("chat") and access.allows("read")
    tokens.authenticate(secret)
    assert len(events(tenant_a.group, "api_token.first_used")) == 1
    with group_scope(tenant_a.group):
        assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_scopes_are_checked_and_validated(tenant_a):
    _, secret = make_token(tenant_a, scopes=["read"])
    access = tokens.authenticate(secret)
    assert access.allows("read") and not access.allows("chat")
    with pytest.raises(ValidationError):
        make_token(tenant_a, scopes=["admin"])
    with pytest.raises(ValidationError):
        make_token(tenant_a, scopes=[])


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic prl_" + "a" * 40, "Bearer prl_short", "Bearer sk-" + "a" * 40],
)
def test_malformed_headers_name_no_token(header):
    assert tokens.bearer_secret(header) is None


def test_a_revoked_expired_orphaned_or_deactivated_token_stops_at_once(tenant_a):
    revoked, revoked_secret = make_token(tenant_a)
    tokens.token_revoke(token=revoked, actor=tenant_a.owner)
    assert tokens.authenticate(revoked_secret) is None
    assert len(events(tenant_a.group, "api_token.revoked")) == 1
    tokens.token_revoke(token=revoked, actor=tenant_a.owner)  # twice changes nothing
    assert len(events(tenant_a.group, "api_token.revoked")) == 1

    expiring, expiring_secret = make_token(tenant_a, expires_at=timezone.now() + timedelta(hours=1))
    assert tokens.authenticate(expiring_secret) is not None
    with group_scope(tenant_a.group):
        ApiToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now())
    assert tokens.authenticate(expiring_secret) is None

    _, member_secret = make_token(tenant_a)
    with group_scope(tenant_a.group):
        membership = Membership.objects.get(user=tenant_a.member)
    services.membership_delete(membership=membership, actor=tenant_a.owner)
    assert tokens.authenticate(member_secret) is None

    _, owner_secret = make_token(tenant_a, user=tenant_a.owner)
    assert tokens.authenticate(owner_secret) is not None
    tenant_a.owner.is_active = False
    tenant_a.owner.save()
    assert tokens.authenticate(owner_secret) is None
    assert tokens.authenticate("prl_" + "x" * 40) is None


def test_a_token_is_made_for_a_member_only_and_expires_in_the_future(tenant_a, tenant_b):
    with pytest.raises(ValidationError):
        tokens.token_create(
            group=tenant_a.group, user=tenant_b.member, name="x", scopes=["read"], actor=None
        )
    with pytest.raises(ValidationError):
        make_token(tenant_a, expires_at=timezone.now() - timedelta(seconds=1))


# --- the page ------------------------------------------------------------------------------


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_page_shows_the_secret_once_and_then_only_its_prefix(tenant_a):
    client = signed_in(tenant_a.member)
    response = client.post(
        reverse("tokens"), {"name": "Laptop script", "scopes": ["read"], "expires_in_days": "30"}
    )
    assert response.status_code == 201
    secret = re.search(r'value="(prl_[0-9A-Za-z]{40})"', response.content.decode()).group(1)
    access = tokens.authenticate(secret)
    assert access.token.scopes == ["read"]
    assert timedelta(days=29) < access.token.expires_at - timezone.now() <= timedelta(days=30)
    page = client.get(reverse("tokens")).content.decode()
    assert "Laptop script" in page and secret[:12] in page and secret not in page


def test_members_see_and_revoke_their_own_owners_the_groups(tenant_a, tenant_b):
    own, _ = make_token(tenant_a, user=tenant_a.owner)
    theirs, theirs_secret = make_token(tenant_a)
    foreign, foreign_secret = make_token(tenant_b)
    member = signed_in(tenant_a.member)
    assert own.name in member.get(reverse("tokens")).content.decode()  # same name…
    assert f'data-token="{own.pk}"' not in member.get(reverse("tokens")).content.decode()
    assert member.post(reverse("token-revoke", args=[own.pk])).status_code == 404
    assert member.post(reverse("token-revoke", args=[foreign.pk])).status_code == 404

    owner = signed_in(tenant_a.owner)
    page = owner.get(reverse("tokens")).content.decode()
    assert f'data-token="{theirs.pk}"' in page and f'data-token="{foreign.pk}"' not in page
    assert owner.post(reverse("token-revoke", args=[theirs.pk])).status_code == 302
    assert tokens.authenticate(theirs_secret) is None
    assert owner.post(reverse("token-revoke", args=[foreign.pk])).status_code == 404
    assert tokens.authenticate(foreign_secret) is not None
    (revoked,) = events(tenant_a.group, "api_token.revoked")
    assert revoked.actor == tenant_a.owner


def test_the_admin_revokes_and_never_shows_the_hash(tenant_a, tenant_b):
    token, secret = make_token(tenant_a)
    foreign, foreign_secret = make_token(tenant_b)
    client = signed_in(tenant_a.owner)  # staff, owner of tenant A only
    listing = client.get(reverse("admin:ontology_apitoken_changelist")).content.decode()
    assert token.prefix in listing and foreign.prefix not in listing
    change = client.get(reverse("admin:ontology_apitoken_change", args=[token.pk]))
    assert token.digest not in change.content.decode()
    foreign_change = reverse("admin:ontology_apitoken_change", args=[foreign.pk])
    assert client.get(foreign_change).status_code == 404
    client.post(
        reverse("admin:ontology_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk, foreign.pk]},
    )
    assert tokens.authenticate(secret) is None
    assert tokens.authenticate(foreign_secret) is not None
    with scopes_disabled():
        assert ApiToken.objects.get(pk=foreign.pk).revoked_at is None
