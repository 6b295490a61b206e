import pytest
from django.urls import reverse

from ontology import services


def test_pages_need_a_login(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_page_renders_with_csrf(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_logging_in_shows_the_active_groups_agents_only(client, tenant_a, tenant_b):
    response = client.post(
        reverse("login"),
        {"username": "member@alpha.example", "password": "pw-member@alpha.example"},
    )
    assert response.status_code == 302
    page = client.get(reverse("home"), follow=True).content
    assert b"Alpha Agent" in page
    assert b"Bravo Agent" not in page


def test_switching_to_a_group_you_are_not_in_is_a_404(client, tenant_a, tenant_b):
    client.force_login(tenant_a.member)
    response = client.post(reverse("switch-group"), {"group": tenant_b.group.pk})
    assert response.status_code == 404
    response = client.post(reverse("switch-group"), {"group": "999999"})
    assert response.status_code == 404
    assert b"Alpha Agent" in client.get(reverse("home"), follow=True).content


def test_a_user_in_two_groups_switches_between_them(client, tenant_a, tenant_b):
    services.membership_create(
        group=tenant_b.group, user=tenant_a.member, role="member", actor=tenant_b.owner
    )
    client.force_login(tenant_a.member)
    client.post(reverse("switch-group"), {"group": tenant_b.group.pk})
    page = client.get(reverse("home"), follow=True).content
    assert b"Bravo Agent" in page
    assert b"Alpha Agent" not in page


def test_switching_needs_csrf(tenant_a):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tenant_a.member)
    response = strict.post(reverse("switch-group"), {"group": tenant_a.group.pk})
    assert response.status_code == 403


@pytest.mark.usefixtures("clear_cache")
def test_healthz_reports_both_stores(client, db):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok", "redis": "ok"}
