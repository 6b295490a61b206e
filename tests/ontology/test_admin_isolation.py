"""Tenant A's admin must not see, reach or write tenant B's rows through the admin."""

import pytest
from django.urls import reverse

from agents.models import Agent
from ontology.models import Event, Membership, Thing
from ontology.scoping import group_scope, scopes_disabled


def agent_form(group_id, **overrides):
    data = {
        "group": group_id,
        "name": "Helper",
        "status": "active",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "temperature": "0.5",
        "fallbackProvider": "",
        "fallbackModel": "",
        "systemPrompt": "Be brief.",
        "tools": ["searchKnowledge"],
        "maxConsecutiveToolCalls": "5",
        "toolCallTimeout": "30",
        "ragEnabled": "on",
        "ragTopK": "5",
        "embeddingModel": "all-MiniLM-L6-v2",
        "maxTokens": "512",
        "requestTimeout": "60",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_a(client, tenant_a, tenant_b):
    client.force_login(tenant_a.owner)
    return client


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:agents_agent_change",
        "admin:agents_agent_delete",
        "admin:agents_agent_history",
    ],
)
def test_another_tenants_agent_pages_are_not_found(admin_a, tenant_b, url_name):
    response = admin_a.get(reverse(url_name, args=[tenant_b.agent.pk]))
    assert response.status_code == 404


def test_a_made_up_id_looks_the_same_as_another_tenants(admin_a):
    response = admin_a.get(reverse("admin:agents_agent_change", args=[999_999]))
    assert response.status_code == 404


def test_another_tenants_group_page_is_not_found(admin_a, tenant_b):
    response = admin_a.get(reverse("admin:ontology_group_change", args=[tenant_b.group.pk]))
    assert response.status_code == 404


def test_own_agent_page_opens(admin_a, tenant_a):
    response = admin_a.get(reverse("admin:agents_agent_change", args=[tenant_a.agent.pk]))
    assert response.status_code == 200
    assert b"Alpha Agent" in response.content


@pytest.mark.parametrize(
    ("url_name", "own", "other"),
    [
        ("admin:agents_agent_changelist", "Alpha Agent", "Bravo Agent"),
        ("admin:ontology_group_changelist", "Alpha Inc", "Bravo Inc"),
        ("admin:ontology_membership_changelist", "member@alpha.example", "member@bravo.example"),
        ("admin:ontology_event_changelist", "Alpha Agent", "Bravo Agent"),
    ],
)
def test_changelists_show_only_own_rows(admin_a, url_name, own, other):
    response = admin_a.get(reverse(url_name))
    assert response.status_code == 200
    assert own.encode() in response.content
    assert other.encode() not in response.content


def test_list_filters_do_not_reveal_other_groups(admin_a):
    response = admin_a.get(reverse("admin:agents_agent_changelist"))
    assert b"Alpha Inc" in response.content
    assert b"Bravo Inc" not in response.content


def test_filtering_by_another_group_in_the_url_finds_nothing(admin_a, tenant_b):
    url = reverse("admin:agents_agent_changelist") + f"?group__id__exact={tenant_b.group.pk}"
    response = admin_a.get(url)
    assert b"Bravo Agent" not in response.content


def test_search_stays_inside_own_groups(admin_a):
    response = admin_a.get(reverse("admin:agents_agent_changelist") + "?q=Agent")
    assert b"Alpha Agent" in response.content
    assert b"Bravo Agent" not in response.content


@pytest.mark.parametrize(
    ("app_label", "model_name"),
    [("agents", "agent"), ("ontology", "membership"), ("ontology", "thing")],
)
def test_group_autocomplete_offers_only_own_groups(admin_a, tenant_a, app_label, model_name):
    response = admin_a.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": "group", "term": ""},
    )
    assert response.status_code == 200
    names = [item["text"] for item in response.json()["results"]]
    assert names == ["Alpha Inc"]


def test_autocomplete_by_name_does_not_find_another_group(admin_a):
    response = admin_a.get(
        reverse("admin:autocomplete"),
        {"app_label": "agents", "model_name": "agent", "field_name": "group", "term": "Bravo"},
    )
    assert response.json()["results"] == []


def test_cannot_create_an_agent_in_another_group(admin_a, tenant_b):
    response = admin_a.post(
        reverse("admin:agents_agent_add"), agent_form(tenant_b.group.pk, name="Trojan")
    )
    assert response.status_code == 200
    assert "group" in response.context["adminform"].form.errors
    with scopes_disabled():
        assert not Agent.objects.filter(name="Trojan").exists()


def test_cannot_move_an_agent_into_another_group(admin_a, tenant_a, tenant_b):
    response = admin_a.post(
        reverse("admin:agents_agent_change", args=[tenant_a.agent.pk]),
        agent_form(tenant_b.group.pk, name="Alpha Agent"),
    )
    assert response.status_code == 302
    with scopes_disabled():
        assert Agent.objects.get(pk=tenant_a.agent.pk).group == tenant_a.group
        assert not Agent.objects.filter(group=tenant_b.group, name="Alpha Agent").exists()


def test_cannot_edit_another_tenants_agent_by_posting(admin_a, tenant_b):
    response = admin_a.post(
        reverse("admin:agents_agent_change", args=[tenant_b.agent.pk]),
        agent_form(tenant_b.group.pk, name="Hijacked"),
    )
    assert response.status_code == 404
    with scopes_disabled():
        assert Agent.objects.get(pk=tenant_b.agent.pk).name == "Bravo Agent"


def test_cannot_add_a_membership_to_another_group(admin_a, tenant_a, tenant_b):
    response = admin_a.post(
        reverse("admin:ontology_membership_add"),
        {"group": tenant_b.group.pk, "user": tenant_a.member.pk, "role": "owner"},
    )
    assert response.status_code == 200
    assert "group" in response.context["adminform"].form.errors
    with group_scope(tenant_b.group):
        assert not Membership.objects.filter(user=tenant_a.member).exists()


def test_user_choices_exclude_other_tenants_people(admin_a):
    response = admin_a.get(reverse("admin:ontology_membership_add"))
    assert b"member@alpha.example" in response.content
    assert b"member@bravo.example" not in response.content


def test_a_plain_member_gets_no_tenant_admin(client, tenant_a):
    tenant_a.member.is_staff = True
    tenant_a.member.save()
    client.force_login(tenant_a.member)
    response = client.get(reverse("admin:agents_agent_changelist"))
    assert response.status_code == 403
    response = client.get(reverse("admin:agents_agent_change", args=[tenant_a.agent.pk]))
    assert response.status_code in (403, 404)


def test_the_superuser_sees_every_tenant(client, superuser, tenant_a, tenant_b):
    client.force_login(superuser)
    response = client.get(reverse("admin:agents_agent_changelist"))
    assert b"Alpha Agent" in response.content
    assert b"Bravo Agent" in response.content


def test_events_are_read_only_in_the_admin(admin_a, tenant_a):
    with group_scope(tenant_a.group):
        event = Event.objects.first()
    url = reverse("admin:ontology_event_change", args=[event.pk])
    assert admin_a.get(url).status_code == 200
    assert admin_a.post(url, {"type": "forged"}).status_code == 403
    assert admin_a.get(reverse("admin:ontology_event_add")).status_code == 403
    with group_scope(tenant_a.group):
        assert Event.objects.get(pk=event.pk).type == event.type


def test_creating_an_agent_in_the_admin_validates_and_audits(admin_a, tenant_a):
    response = admin_a.post(reverse("admin:agents_agent_add"), agent_form(tenant_a.group.pk))
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        agent = Agent.objects.get(name="Helper")
        assert agent.properties["tools"] == ["searchKnowledge"]
        assert agent.properties["ragEnabled"] is True
        event = Event.objects.get(type="agent.created", target_id=str(agent.pk))
    assert event.actor == tenant_a.owner


def test_a_new_agent_is_limited_to_sources_of_its_own_group(admin_a, tenant_a, tenant_b):
    from agents import knowledge

    def source(tenant, title):
        with group_scope(tenant.group):
            return knowledge.source_add_text(
                group=tenant.group, title=title, text="Text.", queue=False, actor=None
            )[0]

    ours, theirs = source(tenant_a, "Travel policy"), source(tenant_b, "Beta secrets")
    page = admin_a.get(reverse("admin:agents_agent_add")).content.decode()
    assert "Travel policy" in page and "Beta secrets" not in page  # offered before the save

    refused = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, knowledgeSources=[str(theirs.pk)]),
    )
    assert "knowledgeSources" in refused.context["adminform"].form.errors
    response = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, knowledgeSources=[str(ours.pk)]),
    )
    assert response.status_code == 302
    with group_scope(tenant_a.group):
        assert Agent.objects.get(name="Helper").properties["knowledgeSources"] == [ours.pk]


def test_bad_agent_values_in_the_admin_are_refused_by_field(admin_a, tenant_a):
    response = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, temperature="3", ragTopK="0", maxTokens="999999"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "between 0 and 2" in errors["temperature"][0]
    assert "between 1 and 50" in errors["ragTopK"][0]
    assert "at most 16384" in errors["maxTokens"][0]
    with group_scope(tenant_a.group):
        assert not Thing.objects.filter(name="Helper").exists()


def test_a_model_from_the_wrong_provider_is_refused(admin_a, tenant_a):
    response = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, provider="anthropic", model="gpt-4o"),
    )
    assert (
        "not in the catalog for Anthropic" in response.context["adminform"].form.errors["model"][0]
    )


def test_demoting_the_last_owner_in_the_admin_is_refused(admin_a, tenant_a):
    with group_scope(tenant_a.group):
        owner = Membership.objects.get(user=tenant_a.owner)
    response = admin_a.post(
        reverse("admin:ontology_membership_change", args=[owner.pk]), {"role": "member"}
    )
    assert response.status_code == 200
    assert "at least one owner" in response.context["adminform"].form.errors["role"][0]


def test_editing_a_task_in_the_admin_validates_properties_and_audits(admin_a, tenant_a):
    from ontology import services

    task = services.thing_create(
        group=tenant_a.group, type="task", name="Order chairs", actor=tenant_a.owner
    )
    url = reverse("admin:ontology_thing_change", args=[task.pk])
    bad = admin_a.post(
        url, {"name": "Order chairs", "status": "active", "properties": '{"state": "lost"}'}
    )
    assert "state: State must be one of" in bad.context["adminform"].form.errors["properties"][0]
    good = admin_a.post(
        url, {"name": "Order desks", "status": "active", "properties": '{"state": "done"}'}
    )
    assert good.status_code == 302
    with group_scope(tenant_a.group):
        task.refresh_from_db()
        event = Event.objects.get(type="task.updated", target_id=str(task.pk))
    assert (task.name, task.properties["state"]) == ("Order desks", "done")
    assert event.metadata["changes"]["name"] == ["Order chairs", "Order desks"]


def test_a_tenant_admin_renames_their_group_but_cannot_change_its_plan(admin_a, tenant_a):
    url = reverse("admin:ontology_group_change", args=[tenant_a.group.pk])
    response = admin_a.post(
        url, {"name": "Alpha Holdings", "properties": "{}", "plan": "enterprise"}
    )
    assert response.status_code == 302
    tenant_a.group.refresh_from_db()
    assert (tenant_a.group.name, tenant_a.group.plan) == ("Alpha Holdings", "free")
    with group_scope(tenant_a.group):
        event = Event.objects.get(type="group.updated")
    assert event.metadata["changes"] == {"name": ["Alpha Inc", "Alpha Holdings"]}
