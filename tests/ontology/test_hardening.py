"""Findings of an outside attack run: the admin's own-group page, its "view on site"
redirect across tenants, and characters PostgreSQL cannot store, refused at the edge."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse, QueryDict
from django.urls import reverse

from chat.models import AIThread
from ontology.middleware import RefuseUnstorableCharactersMiddleware
from ontology.models import Event
from ontology.scoping import group_scope
from tests.test_isolation_matrix import page_text

pytestmark = pytest.mark.django_db

NUL_SENTENCE = "Your request contained a character we can't accept (a NUL byte)."


@pytest.fixture
def thread_a(tenant_a):
    with group_scope(tenant_a.group):
        return AIThread.objects.create(group=tenant_a.group, user=tenant_a.member, title="Plans")


def view_on_site(obj) -> str:
    content_type = ContentType.objects.get_for_model(obj)
    return reverse("admin:view_on_site", args=[content_type.pk, obj.pk])


def test_an_owner_opens_and_renames_their_own_group_in_the_admin(client, tenant_a):
    client.force_login(tenant_a.owner)
    url = reverse("admin:ontology_group_change", args=[tenant_a.group.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"Alpha Inc" in page.content
    saved = client.post(url, {"name": "Alpha Holdings", "properties": "{}"})
    assert saved.status_code == 302
    tenant_a.group.refresh_from_db()
    assert (tenant_a.group.name, tenant_a.group.slug) == ("Alpha Holdings", "alpha")


def test_view_on_site_does_not_tell_another_tenant_which_threads_exist(
    client, tenant_a, tenant_b, thread_a
):
    client.force_login(tenant_b.owner)
    someone_elses = client.get(view_on_site(thread_a))
    missing_thread = AIThread(pk=thread_a.pk + 1000)
    missing = client.get(view_on_site(missing_thread))
    assert (someone_elses.status_code, missing.status_code) == (404, 404)
    assert page_text(someone_elses) == page_text(missing)
    assert someone_elses.headers.get("Location") is None


def test_view_on_site_still_leads_an_owner_and_a_superuser_to_the_thread(
    client, tenant_a, superuser, thread_a
):
    for user in (tenant_a.owner, superuser):
        client.force_login(user)
        response = client.get(view_on_site(thread_a))
        assert response.status_code == 302
        assert response["Location"].endswith(reverse("thread-detail", args=[thread_a.pk]))


def test_a_nul_in_a_search_is_refused_with_a_sentence(client, tenant_a):
    client.force_login(tenant_a.member)
    response = client.get(reverse("thread-list"), {"q": "\x00"})
    assert response.status_code == 400
    assert response.content.decode() == NUL_SENTENCE


def test_a_nul_in_the_admin_autocomplete_is_refused(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(
        reverse("admin:autocomplete"),
        {
            "term": "\x00",
            "app_label": "agents",
            "model_name": "agent",
            "field_name": "group",
        },
    )
    assert response.status_code == 400


def test_a_nul_in_a_new_title_is_refused_and_nothing_is_stored(client, tenant_a, thread_a):
    client.force_login(tenant_a.member)
    response = client.post(reverse("thread-rename", args=[thread_a.pk]), {"title": "x\x00y"})
    assert response.status_code == 400
    with group_scope(tenant_a.group):
        thread_a.refresh_from_db()
        assert thread_a.title == "Plans"
        assert not Event.objects.filter(type__startswith="thread.").exists()


def passed(request) -> HttpResponse:
    upload = request.FILES.get("file")
    return HttpResponse(f"{request.POST.get('name')}:{upload.read().decode() if upload else ''}")


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", {"\x00": "1"}),  # a NUL in a key
        ("post", {"name": "a\x00", "file": SimpleUploadedFile("a.txt", b"hello")}),
    ],
)
def test_the_middleware_refuses_nul_in_keys_and_multipart_fields(rf, request_args):
    method, data = request_args
    response = RefuseUnstorableCharactersMiddleware(passed)(getattr(rf, method)("/x/", data))
    assert response.status_code == 400


def test_the_middleware_refuses_a_lone_surrogate(rf):
    request = rf.get("/x/")
    request.GET = QueryDict(mutable=True)
    request.GET["q"] = "caf\ud800"
    response = RefuseUnstorableCharactersMiddleware(passed)(request)
    assert response.status_code == 400
    assert "can't accept" in response.content.decode()


def test_an_upload_passes_the_middleware_untouched(rf):
    data = {"name": "notes", "file": SimpleUploadedFile("a.txt", b"hello \xe2\x82\xac")}
    response = RefuseUnstorableCharactersMiddleware(passed)(rf.post("/x/", data))
    assert response.status_code == 200
    assert response.content.decode() == "notes:hello €"
