"""Rate limits: 429 with a sentence and Retry-After, keyed by user and group, shared by every
process through Redis, audited once per window. Windows are a day long so none rolls over."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django_ratelimit.exceptions import Ratelimited
from django_ratelimit.middleware import RatelimitMiddleware

from billing.ratelimits import limit_requests, message_rate_limited
from ontology.models import Event
from ontology.scoping import group_scope
from tests.conftest import make_tenant, make_user, set_plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_counters(clear_cache):
    yield


def hits(group) -> list[dict]:
    with group_scope(group):
        events = Event.objects.filter(type="rate_limit.hit").order_by("timestamp", "id")
        return list(events.values_list("metadata", flat=True))


@pytest.mark.django_db
def test_too_many_logins_get_429_with_a_sentence_and_retry_after(client, tenant_a, settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {"login": {"ip": "100/d", "username": "3/d"}}
    username = tenant_a.member.username
    for _ in range(3):
        response = client.post(reverse("login"), {"username": username, "password": "wrong"})
        assert response.status_code == 200
    refused = client.post(reverse("login"), {"username": username, "password": "pw-" + username})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many requests" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # the right password did not get through
    client.post(reverse("login"), {"username": username, "password": "wrong"})
    # Audited once per window, in the groups of the account that was aimed at.
    assert [h["bucket"] for h in hits(tenant_a.group)] == ["login"]
    other = client.post(reverse("login"), {"username": tenant_a.owner.username, "password": "x"})
    assert other.status_code == 200  # another account has its own counter


@pytest.mark.django_db
def test_the_admin_login_is_limited_too(client, tenant_a, settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {"login": {"ip": "2/d"}}
    url = reverse("admin:login")
    statuses = [client.post(url, {"username": "a", "password": "b"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.django_db
def test_a_limited_view_counts_per_user_and_per_group(tenant_a, settings):
    settings.PARLEY_HTTP_RATE_LIMITS = {"upload": {"user": "2/d", "group": "3/d"}}

    @limit_requests("upload")
    def upload(request):
        return HttpResponse("stored")

    def post(user):
        request = RequestFactory().post("/upload/", HTTP_ACCEPT="application/json")
        request.user, request.group = user, tenant_a.group
        return upload(request)

    first, second, third = post(tenant_a.member), post(tenant_a.member), post(tenant_a.member)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
    assert json.loads(third.content)["code"] == "rate_limited"
    assert post(tenant_a.owner).status_code == 200  # the group's third request
    group_full = post(tenant_a.owner)
    assert group_full.status_code == 429 and group_full["Retry-After"]
    assert [(h["bucket"], h["scope"]) for h in hits(tenant_a.group)] == [
        ("upload", "user"),
        ("upload", "group"),
    ]
    reading = RequestFactory().get("/upload/")
    reading.user, reading.group = tenant_a.member, tenant_a.group
    assert upload(reading).status_code == 200  # reads are not limited


def test_django_ratelimits_own_decorator_answers_429(rf):
    middleware = RatelimitMiddleware(lambda request: HttpResponse())
    request = rf.post("/anything/", HTTP_ACCEPT="application/json")
    response = middleware.process_exception(request, Ratelimited())
    assert response.status_code == 429 and response["Retry-After"]


@pytest.mark.django_db
def test_message_limits_come_from_the_plan_and_are_audited_once(tenant_a):
    set_plan("free", message_rate_user="2/d", message_rate_group="100/d")
    results = [message_rate_limited(user=tenant_a.member, group=tenant_a.group) for _ in range(4)]
    assert results[:2] == [None, None] and results[2] >= 1 and results[3] >= 1
    assert [(h["bucket"], h["scope"]) for h in hits(tenant_a.group)] == [("messages", "user")]
    set_plan("free", message_rate_user="50/d", message_rate_group="100/d")
    assert message_rate_limited(user=tenant_a.member, group=tenant_a.group) is None


WORKER = """
import json, sys, django
django.setup()
from billing.ratelimits import message_rate_limited
from ontology.models import Group, User
group, user = Group.objects.get(pk=int(sys.argv[1])), User.objects.get(pk=int(sys.argv[2]))
print(json.dumps([message_rate_limited(user=user, group=group) for _ in range(int(sys.argv[3]))]))
"""


def _database_url() -> str:
    db = django_settings.DATABASES["default"]
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_limits_hold_across_two_processes_sharing_redis():
    tenant_user = make_user("busy@example.com")
    tenant = make_tenant("shared")
    set_plan("free", message_rate_user="4/d", message_rate_group="100/d")
    here = [message_rate_limited(user=tenant.member, group=tenant.group) for _ in range(3)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
    }
    other = subprocess.run(
        [sys.executable, "-c", WORKER, str(tenant.group.pk), str(tenant.member.pk), "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    there = json.loads(other.stdout.strip().splitlines()[-1])
    assert here == [None, None, None]
    assert there[0] is None and all(wait is not None and wait >= 1 for wait in there[1:])
    assert message_rate_limited(user=tenant.member, group=tenant.group) is not None
    assert message_rate_limited(user=tenant_user, group=tenant.group) is None


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_a_stranger_locks_only_their_own_address_out_of_an_account(
    client, tenant_a, settings, url_name
):
    settings.PARLEY_HTTP_RATE_LIMITS = {"login": {"ip": "100/d", "username": "10/d"}}
    url, username = reverse(url_name), tenant_a.owner.username
    right = {"username": username, "password": "pw-" + username}
    guesses = [
        client.post(url, {"username": username, "password": f"guess-{n}"}, REMOTE_ADDR="10.0.0.1")
        for n in range(11)
    ]
    assert [r.status_code for r in guesses] == [200] * 10 + [429]
    assert client.post(url, right, REMOTE_ADDR="10.0.0.1").status_code == 429
    assert "_auth_user_id" not in client.session
    signed_in = client.post(url, right, REMOTE_ADDR="10.0.0.2")
    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(tenant_a.owner.pk)
    with group_scope(tenant_a.group):
        failed = Event.objects.filter(type="auth.login_failed", target_id=str(tenant_a.owner.pk))
        assert [e.metadata["ip"] for e in failed] == ["10.0.0.1"] * 10
    assert [(h["bucket"], h["scope"], h["ip"]) for h in hits(tenant_a.group)] == [
        ("login", "username", "10.0.0.1"),
    ]
