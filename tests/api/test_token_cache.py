"""Cached admissions (ontology.token_cache through api.auth): a program's second request needs
no SQL, and whatever ends or changes a token is seen on the very next request, because it
bumps the token's version in Redis when it commits (these tests commit: transaction=True)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.db import connection
from django.db.backends.signals import connection_created
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.exceptions import RedisError

from api.auth import CHAT, READ, token_required
from api.openai_compat.catalog import model_id
from billing.counters import count_and_read
from billing.selectors import forget_plans
from ontology import services, token_cache, tokens
from ontology.db_async import io_call
from ontology.models import ApiToken, Event, Membership
from ontology.scoping import group_scope, scopes_disabled
from ontology.versions import token_version_key
from tests.caches import UNREACHABLE
from tests.conftest import make_tenant, set_plan

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
    (first,) = count_and_read([], [key]).versions
    (again,) = count_and_read([("test:counter", "10/m")], [key]).versions
    assert first == again
    tokens.token_revoke(token=token, actor=None)
    (after,) = count_and_read([], [key]).versions
    assert after != first


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


# --- From the event loop: the OpenAI endpoint's admission ---------------------------------


class ConnectionsOpened:
    """Counts database connections opened on any thread. The request pool's threads give
    theirs back after each call (the pool, CONN_MAX_AGE=0), so any query a request makes
    there opens one; none opened means no query ran anywhere."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> ConnectionsOpened:
        connection_created.connect(self._opened, dispatch_uid=id(self))
        return self

    def __exit__(self, *exc) -> None:
        connection_created.disconnect(dispatch_uid=id(self))

    def _opened(self, sender, connection, **kwargs) -> None:
        self.count += 1


async def complete(secret: str, model: str):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    return await AsyncClient().post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


@database_sync_to_async
def chat_token(tenant) -> str:
    return tokens.token_create(
        group=tenant.group, user=tenant.member, name="bot", scopes=["chat"], actor=None
    )[1]


async def test_a_cached_completion_admission_runs_no_query(tenant):
    secret = await chat_token(tenant)
    with ConnectionsOpened() as cold:
        first = await complete(secret, "no-such-model-1")
    assert first.status_code == 404 and cold.count >= 1  # token and agents read
    with ConnectionsOpened() as warm:
        second = await complete(secret, "no-such-model-1")
    assert second.status_code == 404 and warm.count == 0


@pytest.fixture
def no_messages():
    """The free plan allows no message. The process keeps plans it read (billing.selectors)
    and the test database's flush sends no signal, so it forgets this one afterwards."""
    set_plan("free", message_rate_user="0/m")
    yield
    forget_plans()


@pytest.mark.usefixtures("no_messages")
async def test_a_message_refused_from_the_loop_is_audited_once_and_runs_no_query(tenant):
    secret = await chat_token(tenant)
    model = model_id(agent_id=tenant.agent.pk, name=tenant.agent.name)
    first = await complete(secret, model)
    assert first.status_code == 429
    with ConnectionsOpened() as warm:
        second = await complete(secret, model)
    assert second.status_code == 429 and int(second["Retry-After"]) >= 1
    assert warm.count == 0

    @database_sync_to_async
    def hits():
        with group_scope(tenant.group):
            return list(Event.objects.filter(type="rate_limit.hit").values_list("metadata"))

    ((metadata,),) = await hits()
    assert (metadata["bucket"], metadata["scope"]) == ("messages", "user")


async def test_a_token_revoked_in_another_process_is_refused_by_the_loop(tenant):
    secret = await chat_token(tenant)
    assert (await complete(secret, "no-such-model")).status_code == 404

    @database_sync_to_async
    def revoke():
        with scopes_disabled():
            token = ApiToken.objects.get(digest=tokens.digest_of(secret))
        tokens.token_revoke(token=token, actor=None)

    await revoke()  # what reaches this process is the bumped version in Redis
    assert token_cache.cached(tokens.digest_of(secret)) is not None
    assert (await complete(secret, "no-such-model")).status_code == 401


async def test_a_cached_admission_needs_no_database_thread(tenant, settings):
    """Every thread of the request pool is held while the request runs: admitted in the
    event loop, it is answered all the same (a trip to a thread would wait for ever)."""
    secret = await chat_token(tenant)
    assert (await complete(secret, "no-such-model")).status_code == 404  # now cached
    loop, release, all_held = asyncio.get_running_loop(), threading.Event(), asyncio.Event()
    holding = []

    def hold() -> None:
        holding.append(threading.current_thread())
        if len(holding) == settings.PARLEY_DB_THREADS:
            loop.call_soon_threadsafe(all_held.set)
        release.wait()

    held = [asyncio.ensure_future(io_call(hold)()) for _ in range(settings.PARLEY_DB_THREADS)]
    await all_held.wait()
    try:
        response = await asyncio.wait_for(complete(secret, "no-such-model"), timeout=10)
        assert response.status_code == 404
    finally:
        release.set()
        await asyncio.gather(*held)


async def test_without_redis_the_loop_admits_nothing_from_its_cache(tenant):
    secret = await chat_token(tenant)
    assert (await complete(secret, "no-such-model")).status_code == 404  # now cached

    @database_sync_to_async
    def revoke():
        with scopes_disabled():
            token = ApiToken.objects.get(digest=tokens.digest_of(secret))
        tokens.token_revoke(token=token, actor=None)  # its bump is lost with Redis

    with override_settings(CACHES=UNREACHABLE):
        await revoke()
        response = await complete(secret, "no-such-model")
    assert response.status_code == 401


def redis_calls() -> dict[str, int]:
    """Commands the test Redis has run so far, by name (but these INFO calls)."""
    stats = cache.redis_client().info("commandstats")
    return {name: stat["calls"] for name, stat in stats.items() if name != "cmdstat_info"}


async def test_a_cached_completion_admission_is_one_redis_call(tenant):
    """The token's version, its request counts and the group's configuration version are
    read in one Lua call (refused for its model, the request counts no message)."""
    secret = await chat_token(tenant)
    assert (await complete(secret, "no-such-model")).status_code == 404  # now cached
    before = await database_sync_to_async(redis_calls)()
    assert (await complete(secret, "no-such-model")).status_code == 404
    after = await database_sync_to_async(redis_calls)()
    ran = {name: calls - before.get(name, 0) for name, calls in after.items()}
    # Redis counts the script's own commands too: the user's and the group's counters, the
    # token's version and the group's configuration version.
    assert {name: calls for name, calls in ran.items() if calls} == {
        "cmdstat_evalsha": 1,
        "cmdstat_incr": 2,
        "cmdstat_get": 2,
    }
