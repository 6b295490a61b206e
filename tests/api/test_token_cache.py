"""Cached admissions (ontology.token_cache through api.auth): a program's second request needs
no SQL, and whatever ends or changes a token is seen on the very next request, because it
bumps the token's version in Redis when it commits (these tests commit: transaction=True)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.exceptions import RedisError

from api.auth import CHAT, READ, token_required
from billing.counters import count_and_read
from ontology import services, token_cache, tokens
from ontology.models import ApiToken, Event, Membership
from ontology.scoping import group_scope, scopes_disabled
from ontology.versions import token_version_key
from tests.conftest import make_tenant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clear_cache")]


@token_required(READ)
def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "user": request.user.pk,
            "group": request.group.pk,
            "role": request.group.role,
            "name": request.group.name,
            "token": request.token.pk,
        }
    )


@token_required(CHAT)
def chat_only(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def call(secret: str, view=whoami):
    request = RequestFactory().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {secret}")
    return view(request)


def queries_of(secret: str, view=whoami):
    with CaptureQueriesContext(connection) as queries:
        response = call(secret, view)
    return response, len(queries)


@pytest.fixture
def tenant():
    token_cache.forget_all()
    yield make_tenant("acme")
    token_cache.forget_all()


def new_token(tenant, user=None, **kwargs) -> tuple[ApiToken, str]:
    user = user or tenant.member
    return tokens.token_create(
        group=tenant.group, user=user, name="bot", scopes=["read"], actor=None, **kwargs
    )


def warmed(tenant, **kwargs) -> tuple[ApiToken, str]:
    """A token this process has admitted once (and so keeps)."""
    token, secret = new_token(tenant, **kwargs)
    assert call(secret).status_code == 200
    assert token_cache.cached(tokens.digest_of(secret)) is not None
    return token, secret


def test_a_cached_admission_runs_no_query_and_speaks_for_the_same_member(tenant):
    token, secret = new_token(tenant)
    first, first_queries = queries_of(secret)
    assert first.status_code == 200 and first_queries >= 1  # the database decided
    second, second_queries = queries_of(secret)
    assert second.status_code == 200 and second_queries == 0
    assert json.loads(second.content) == {
        "user": tenant.member.pk,
        "group": tenant.group.pk,
        "role": Membership.Role.MEMBER,
        "name": tenant.group.name,
        "token": token.pk,
    }
    with group_scope(tenant.group):
        assert Event.objects.filter(type="api_token.first_used").count() == 1


def test_a_cached_token_is_still_counted_against_the_api_limit(tenant, settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {
        **settings.PARLEY_HTTP_RATE_LIMITS,
        "api": {"user": "2/m", "group": "100/m"},
    }
    _, secret = warmed(tenant)  # one
    assert call(secret).status_code == 200  # two, from the cache
    refused = call(secret)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1


def test_a_revoked_token_stops_on_the_next_request(tenant):
    token, secret = warmed(tenant)
    tokens.token_revoke(token=token, actor=tenant.owner)
    assert call(secret).status_code == 401
    assert token_cache.cached(tokens.digest_of(secret)) is None


def test_a_removed_member_is_refused_on_the_next_request(tenant):
    _, secret = warmed(tenant)
    with group_scope(tenant.group):
        membership = Membership.objects.get(user=tenant.member)
    services.membership_delete(membership=membership, actor=tenant.owner)
    assert call(secret).status_code == 401


def test_a_role_change_is_seen_on_the_next_request(tenant):
    _, secret = warmed(tenant)
    with group_scope(tenant.group):
        membership = Membership.objects.get(user=tenant.member)
    services.membership_update(
        membership=membership, role=Membership.Role.ADMIN, actor=tenant.owner
    )
    assert json.loads(call(secret).content)["role"] == Membership.Role.ADMIN


def test_a_deactivated_user_is_refused_on_the_next_request(tenant):
    _, secret = warmed(tenant)
    tenant.member.is_active = False
    tenant.member.save(update_fields=["is_active"])
    assert call(secret).status_code == 401


def test_a_deleted_token_is_refused_on_the_next_request(tenant):
    token, secret = warmed(tenant)
    with scopes_disabled():
        ApiToken.objects.filter(pk=token.pk).delete()  # as the admin's bulk delete does
    assert call(secret).status_code == 401


def test_a_group_change_is_seen_on_the_next_request(tenant):
    _, secret = warmed(tenant)
    services.group_update(group=tenant.group, actor=tenant.owner, name="Acme Renamed")
    assert json.loads(call(secret).content)["name"] == "Acme Renamed"


def test_a_token_edited_in_the_admin_is_read_afresh(tenant):
    token, secret = warmed(tenant)
    with scopes_disabled():
        token = ApiToken.objects.get(pk=token.pk)
    token.revoked_at = timezone.now()
    token.save()  # what the admin's change form does
    assert call(secret).status_code == 401


def test_a_cached_token_stops_when_it_expires(tenant):
    expires_at = timezone.now() + timedelta(seconds=2)
    _, secret = warmed(tenant, expires_at=expires_at)
    while timezone.now() < expires_at:  # the clock, not another task, is what we wait for
        time.sleep(0.05)
    assert call(secret).status_code == 401


def test_an_entry_serves_at_most_a_minute_after_the_recorded_use(tenant):
    token, secret = warmed(tenant)
    digest = tokens.digest_of(secret)
    with scopes_disabled():
        last_used_at = ApiToken.objects.get(pk=token.pk).last_used_at
    assert token_cache.cached(digest, now=last_used_at + timedelta(seconds=59)) is not None
    # then the database is asked again, and it writes the use (LAST_USED_EVERY)
    assert token_cache.cached(digest, now=last_used_at + tokens.LAST_USED_EVERY) is None


def test_a_cached_token_without_the_scope_gets_the_databases_answer(tenant):
    _, secret = warmed(tenant)  # a read-only token
    response, queries = queries_of(secret, chat_only)
    assert response.status_code == 403 and queries >= 1


def test_a_view_changing_its_objects_does_not_change_the_cache(tenant):
    _, secret = warmed(tenant)
    digest = tokens.digest_of(secret)
    token_cache.cached(digest).access.group.properties["scribble"] = True
    assert "scribble" not in token_cache.cached(digest).access.group.properties


def test_the_version_is_read_with_the_counts_and_kept_until_bumped(tenant):
    token, secret = warmed(tenant)
    key = token_version_key(tokens.digest_of(secret))
    _, (first,) = count_and_read([], [key])
    _, (again,) = count_and_read([("test:counter", "10/m")], [key])
    assert first == again
    tokens.token_revoke(token=token, actor=None)
    _, (after,) = count_and_read([], [key])
    assert after != first


UNREACHABLE = {
    "default": {
        "BACKEND": "config.cache.SharedRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "KEY_PREFIX": "parley",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def test_without_redis_a_cached_token_revoked_meanwhile_is_refused(tenant):
    token, secret = warmed(tenant)
    with override_settings(CACHES=UNREACHABLE):
        tokens.token_revoke(token=token, actor=None)  # its bump is lost with Redis
        response, queries = queries_of(secret)
    assert response.status_code == 401 and queries >= 1  # the database decided
    assert token_cache.cached(tokens.digest_of(secret)) is None


def test_without_redis_a_valid_cached_token_is_not_admitted_from_the_cache(tenant):
    _, secret = warmed(tenant)
    # The database admits it, then the request cannot be counted: as without the cache.
    unreachable = override_settings(CACHES=UNREACHABLE)
    with unreachable, CaptureQueriesContext(connection) as queries, pytest.raises(RedisError):
        call(secret)
    assert any("ontology_apitoken" in query["sql"] for query in queries.captured_queries)
    assert call(secret).status_code == 200  # Redis back: admitted again
