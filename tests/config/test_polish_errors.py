"""Error pages: people get the site's layout, a plain sentence and a way back; programs under
/api/ and /v1/ keep their JSON errors; the 500 page asks nothing of the database."""

import json

import pytest
from django.test import RequestFactory
from django.urls import reverse

from billing.ratelimits import too_many_requests
from config.errors import permission_denied, server_error

pytestmark = pytest.mark.django_db

HOME_LINK = '<a class="button" href="/">Go to the home page</a>'


def test_a_missing_page_is_in_the_layout_with_a_way_home(client, tenant_a):
    client.force_login(tenant_a.member)
    response = client.get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert 'class="topbar"' in page and ">Chats</a>" in page  # the site's own navigation
    assert "This page does not exist" in page
    assert HOME_LINK in page
    assert "Back to the previous page" not in page  # nowhere to go back to


def test_a_missing_page_offers_the_page_the_person_came_from(client, tenant_a):
    client.force_login(tenant_a.member)
    came_from = "http://testserver/threads/?q=refunds"
    page = client.get("/no-such-page/", HTTP_REFERER=came_from).content.decode()
    assert '<a class="button" href="/threads/?q=refunds" rel="prev">' in page
    assert '<a href="/">Go to the home page</a>' in page


def test_a_link_from_another_site_is_not_offered_as_the_way_back(client, tenant_a):
    client.force_login(tenant_a.member)
    page = client.get("/no-such-page/", HTTP_REFERER="https://evil.example/x").content.decode()
    assert "evil.example" not in page and HOME_LINK in page


def test_programs_keep_their_json_404s(client):
    api = client.get("/api/v1/no-such-route/")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    openai = client.get("/v1/no-such-route")
    assert openai.status_code == 404
    assert openai.json()["error"]["message"] == "Unknown URL /v1/no-such-route."


def test_a_refused_page_says_why_in_the_layout(client, tenant_a):
    client.force_login(tenant_a.member)
    response = client.get(reverse("billing:usage"))
    page = response.content.decode()
    assert response.status_code == 403
    assert 'class="topbar"' in page and "You cannot open this page" in page
    assert "Only owners and admins can see usage." in page
    assert HOME_LINK in page


def test_a_refusal_under_the_api_is_json():
    from django.core.exceptions import PermissionDenied

    request = RequestFactory().get("/api/v1/threads/")
    response = permission_denied(request, PermissionDenied("Not for this token."))
    assert response.status_code == 403
    assert json.loads(response.content)["error"]["message"] == "Not for this token."


def test_the_500_page_renders_in_the_layout_without_touching_the_database(
    django_assert_num_queries, tenant_a
):
    request = RequestFactory().get("/threads/")
    request.user = tenant_a.member  # a context processor would read their groups: none may run
    with django_assert_num_queries(0):
        response = server_error(request)
    page = response.content.decode()
    assert response.status_code == 500
    assert 'class="topbar"' in page and "Something went wrong on our side" in page
    assert HOME_LINK in page


def test_a_server_error_under_the_api_is_json():
    response = server_error(RequestFactory().post("/v1/chat/completions"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "server_error"


def test_the_429_page_matches_the_other_error_pages(rf, tenant_a):
    request = rf.get("/threads/", HTTP_ACCEPT="text/html", HTTP_REFERER="http://testserver/k/")
    request.user = tenant_a.member
    response = too_many_requests(request, 30)
    page = response.content.decode()
    assert response.status_code == 429 and response["Retry-After"] == "30"
    assert 'class="topbar"' in page and "Slow down a little" in page
    assert "Please wait 30 seconds" in page
    assert '<a class="button" href="/k/" rel="prev">Back to the previous page</a>' in page
