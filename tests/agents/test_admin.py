"""Admin pages of the agents app: provider keys, knowledge, prices; isolated per tenant."""

import socket
from decimal import Decimal

import pytest
from django.urls import reverse

from agents import knowledge, services
from agents.encryption import decrypt
from agents.models import KnowledgeSource, ProviderCredential
from billing.models import AICall, PriceOverride
from ontology.models import Event
from ontology.scoping import group_scope, scopes_disabled


@pytest.fixture
def admin_a(client, tenant_a, tenant_b):
    client.force_login(tenant_a.owner)
    return client


def test_a_stored_key_is_encrypted_audited_without_the_key_and_never_shown(admin_a, tenant_a):
    response = admin_a.post(
        reverse("admin:agents_providercredential_add"),
        {
            "group": tenant_a.group.pk,
            "provider": "openai",
            "api_key": "sk-secret-abcd1234",
            "base_url": "",
        },
    )
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        credential = ProviderCredential.objects.get()
        event = Event.objects.get(type="credential.created")
    assert "sk-secret" not in credential.encrypted_api_key
    assert decrypt(credential.encrypted_api_key) == "sk-secret-abcd1234"
    assert "sk-secret" not in str(event.metadata)
    page = admin_a.get(reverse("admin:agents_providercredential_change", args=[credential.pk]))
    listing = admin_a.get(reverse("admin:agents_providercredential_changelist"))
    for content in (page.content, listing.content):
        assert b"sk-secret-abcd1234" not in content
    assert b"\xe2\x80\xa61234" in listing.content  # "…1234"


def test_saving_without_a_new_key_keeps_the_old_one(admin_a, tenant_a):
    adding = admin_a.get(reverse("admin:agents_providercredential_add")).content.decode()
    assert "Leave empty to keep" not in adding  # a new credential has nothing to keep
    credential = services.credential_set(
        group=tenant_a.group, provider="openai", api_key="sk-first-key-0001", actor=None
    )
    editing = admin_a.get(reverse("admin:agents_providercredential_change", args=[credential.pk]))
    assert "Leave empty to keep the current key." in editing.content.decode()
    response = admin_a.post(
        reverse("admin:agents_providercredential_change", args=[credential.pk]),
        {"api_key": "", "base_url": "https://proxy.example/v1"},
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert decrypt(credential.encrypted_api_key) == "sk-first-key-0001"
    assert credential.base_url == "https://proxy.example/v1"


def test_another_tenants_keys_are_out_of_reach(admin_a, tenant_b):
    theirs = services.credential_set(
        group=tenant_b.group, provider="openai", api_key="sk-bravo-key-9999", actor=None
    )
    url = reverse("admin:agents_providercredential_change", args=[theirs.pk])
    assert admin_a.get(url).status_code == 404
    listing = admin_a.get(reverse("admin:agents_providercredential_changelist"))
    assert b"9999" not in listing.content


def test_knowledge_sources_are_added_per_tenant_and_audited(admin_a, tenant_a, tenant_b):
    theirs, _ = knowledge.source_add_text(
        group=tenant_b.group, title="Bravo secrets", text="Only for Bravo.", actor=None
    )
    response = admin_a.post(
        reverse("admin:agents_knowledgesource_add"),
        {
            "group": tenant_a.group.pk,
            "text_title": "Alpha FAQ",
            "text": "Opening hours 9-5.",
            "urls": "",
        },
    )
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        source = KnowledgeSource.objects.get()
        event = Event.objects.get(type="knowledge.source_added")
    assert (source.title, source.status, bytes(source.raw)) == (
        "Alpha FAQ",
        "queued",
        b"Opening hours 9-5.",
    )
    assert (event.actor, event.target_id) == (tenant_a.owner, str(source.pk))
    listing = admin_a.get(reverse("admin:agents_knowledgesource_changelist")).content
    assert b"Alpha FAQ" in listing and b"Bravo secrets" not in listing
    url = reverse("admin:agents_knowledgesource_change", args=[theirs.pk])
    assert admin_a.get(url).status_code == 404


def test_an_admin_upload_over_the_limit_is_a_form_error(admin_a, tenant_a, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES = 10
    response = admin_a.post(
        reverse("admin:agents_knowledgesource_add"),
        {
            "group": tenant_a.group.pk,
            "files": [SimpleUploadedFile("big.txt", b"x" * 11)],
            "text_title": "",
            "text": "",
            "urls": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["files"]
    assert "big.txt" in errors[0] and "limit" in errors[0]
    with group_scope(tenant_a.group):
        assert not KnowledgeSource.objects.exists()


def test_prices_are_for_platform_staff_only(admin_a, client, superuser):
    assert admin_a.get(reverse("admin:billing_priceoverride_changelist")).status_code == 403
    client.force_login(superuser)
    response = client.post(
        reverse("admin:billing_priceoverride_add"),
        {
            "provider": "openai",
            "model": "gpt-4o",
            "input_per_million": "2.00",
            "output_per_million": "8.00",
            "cached_input_per_million": "1.00",
            "note": "negotiated",
        },
    )
    assert response.status_code == 302
    assert PriceOverride.objects.get().output_per_million == Decimal("8.00")


def test_the_ledger_is_read_only_and_scoped(admin_a, tenant_a, tenant_b):
    import uuid

    from agents.catalog import Prices
    from billing.services import LedgerEntry, Usage, ai_calls_record

    prices = Prices(Decimal(1), Decimal(2), Decimal(0))
    for tenant, model in ((tenant_a, "alpha-model-x"), (tenant_b, "bravo-model-y")):
        ai_calls_record(
            entries=[
                LedgerEntry(
                    id=uuid.uuid4(),
                    group_id=tenant.group.pk,
                    user_id=None,
                    agent_id=None,
                    thread_id=None,
                    run_id=None,
                    purpose="chat",
                    provider="openai",
                    model=model,
                    step=0,
                    attempt=0,
                    usage=Usage(10, 5),
                    prices=prices,
                    latency_ms=1,
                    ttft_ms=1,
                    status="ok",
                )
            ]
        )
    listing = admin_a.get(reverse("admin:billing_aicall_changelist"))
    assert b"alpha-model-x" in listing.content and b"bravo-model-y" not in listing.content
    assert admin_a.get(reverse("admin:billing_aicall_add")).status_code == 403
    with scopes_disabled():
        theirs = AICall.objects.get(model="bravo-model-y")
    url = reverse("admin:billing_aicall_change", args=[theirs.pk])
    assert admin_a.get(url).status_code == 404


def test_private_endpoints_are_refused_for_group_keys(admin_a, tenant_a, settings, monkeypatch):
    settings.PARLEY_ALLOW_PRIVATE_BASE_URLS = False
    real_resolve = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # a name on the internal network
        return real_resolve("10.1.2.3" if host == "gateway.corp.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for url in (
        "http://10.0.0.5/v1",
        "http://127.0.0.1:8000/v1",
        "http://localhost/v1",
        "http://169.254.169.254/latest",
        "https://gateway.corp.example/v1",
    ):
        response = admin_a.post(
            reverse("admin:agents_providercredential_add"),
            {
                "group": tenant_a.group.pk,
                "provider": "openai",
                "api_key": "sk-long-enough-key",
                "base_url": url,
            },
        )
        assert "not allowed" in response.context["adminform"].form.errors["base_url"][0], url
    with group_scope(tenant_a.group):
        assert not ProviderCredential.objects.exists()


def test_a_short_key_is_a_form_error_not_a_crash(admin_a, tenant_a):
    response = admin_a.post(
        reverse("admin:agents_providercredential_add"),
        {"group": tenant_a.group.pk, "provider": "openai", "api_key": "short", "base_url": ""},
    )
    assert response.status_code == 200
    assert "API key" in response.context["adminform"].form.errors["api_key"][0]
