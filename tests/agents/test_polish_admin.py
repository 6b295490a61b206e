"""The agent admin takes a simulator model with a behaviour suffix; the demo agent streams at
a pace a person can watch and stop."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from agents.models import Agent
from agents.simulator.scenario import parse_scenario, split_model
from ontology.models import Group
from ontology.scoping import group_scope
from tests.ontology.test_admin_isolation import agent_form

pytestmark = pytest.mark.django_db

SLOW_SIM = "sim-gpt@offline;ttft_ms=600"


@pytest.fixture
def admin_a(client, tenant_a):
    client.force_login(tenant_a.owner)
    return client


def errors_of(response) -> dict:
    return response.context["adminform"].form.errors


def test_a_simulator_model_with_a_behaviour_suffix_is_saved_and_shown_again(admin_a, tenant_a):
    response = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, provider="simulator", model=SLOW_SIM),
    )
    assert response.status_code == 302, errors_of(response)
    with group_scope(tenant_a.group):
        agent = Agent.objects.get(name="Helper")
    assert agent.properties["model"] == SLOW_SIM

    page = admin_a.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    assert f'value="{SLOW_SIM}"' in page  # kept as it is, not lost to the first catalog entry
    assert '<datalist id="id_model-catalog"><option value="gpt-4o"' in page  # still offered
    saved = admin_a.post(
        reverse("admin:agents_agent_change", args=[agent.pk]),
        agent_form(tenant_a.group.pk, provider="simulator", model=SLOW_SIM, name="Renamed"),
    )
    assert saved.status_code == 302
    agent.refresh_from_db()
    assert (agent.name, agent.properties["model"]) == ("Renamed", SLOW_SIM)


@pytest.mark.parametrize(
    ("provider", "model", "error"),
    [
        ("openai", "gpt-4o@offline", "is not in the catalog for OpenAI"),
        ("simulator", "sim-gpt@warp", "Unknown simulator scenario 'warp'"),
        ("simulator", "sim-gpt@text;tps=fast", "'tps' must be a number"),
        ("simulator", "no-such-model@text", "is not in the catalog for Simulator"),
    ],
)
def test_a_suffix_the_provider_cannot_take_is_refused_in_a_sentence(
    admin_a, tenant_a, provider, model, error
):
    response = admin_a.post(
        reverse("admin:agents_agent_add"),
        agent_form(tenant_a.group.pk, provider=provider, model=model),
    )
    assert response.status_code == 200
    assert error in " ".join(errors_of(response)["model"])


def test_the_demo_agent_streams_at_a_visible_pace(settings):
    settings.PARLEY_DEMO_SEED_ALLOWED = True
    settings.PARLEY_PROVIDER_API_KEYS = {}
    call_command("seed_demo")
    group = Group.objects.get(slug="acme")
    with group_scope(group):
        properties = Agent.objects.get(name="Acme Assistant").properties
    base, spec = split_model(properties["model"])
    scenario = parse_scenario(spec)
    assert (properties["provider"], base, scenario.name) == ("simulator", "sim-gpt", "offline")
    assert scenario.number("ttft_ms", 0) == 300
    assert scenario.number("tps", 0) == 40
