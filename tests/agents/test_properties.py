import pytest
from django.core.exceptions import ValidationError

from agents.properties import AGENT_DEFAULTS, validate_agent_properties
from ontology import services
from ontology.models import Thing
from ontology.scoping import group_scope


def test_defaults_are_valid():
    assert validate_agent_properties({}) == AGENT_DEFAULTS


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"provider": "acme-ai"}, "provider", "Unknown provider 'acme-ai'"),
        ({"model": "gpt-imaginary"}, "model", "not in the catalog for OpenAI"),
        ({"provider": "anthropic", "model": "gpt-4o"}, "model", "not in the catalog for Anthropic"),
        ({"model": "text-embedding-3-small"}, "model", "not in the catalog"),
        ({"temperature": 2.5}, "temperature", "between 0 and 2"),
        ({"temperature": -0.1}, "temperature", "between 0 and 2"),
        ({"temperature": "hot"}, "temperature", "between 0 and 2"),
        ({"temperature": True}, "temperature", "between 0 and 2"),
        ({"maxTokens": 0}, "maxTokens", "positive whole number"),
        ({"maxTokens": 1.5}, "maxTokens", "positive whole number"),
        ({"maxTokens": 100_000}, "maxTokens", "at most 16384 for gpt-4o-mini"),
        ({"tools": ["deleteEverything"]}, "tools", "Unknown tool(s): deleteEverything"),
        ({"tools": "searchKnowledge"}, "tools", "list of tool names"),
        ({"model": "deepseek-reasoner", "provider": "deepseek", "tools": ["createTask"]},
         "tools", "cannot call tools"),
        ({"ragTopK": 0}, "ragTopK", "between 1 and 50"),
        ({"ragTopK": 51}, "ragTopK", "between 1 and 50"),
        ({"ragEnabled": "yes"}, "ragEnabled", "true or false"),
        ({"embeddingModel": "word2vec"}, "embeddingModel", "Unknown embedding model"),
        ({"toolCallTimeout": 0}, "toolCallTimeout", "positive number of seconds"),
        ({"requestTimeout": -5}, "requestTimeout", "positive number of seconds"),
        ({"maxConsecutiveToolCalls": 0}, "maxConsecutiveToolCalls", "between 1 and 50"),
        ({"fallbackProvider": "openai", "fallbackModel": "gpt-4o-mini"}, "fallbackModel",
         "must differ"),
        ({"fallbackProvider": "openai", "fallbackModel": "claude-haiku-4-5"}, "fallbackModel",
         "not in the catalog for OpenAI"),
        ({"temprature": 0.5}, "temprature", "Unknown property 'temprature'"),
        ({"systemPrompt": "x" * 20_001}, "systemPrompt", "at most 20000 characters"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_the_field_named(changes, field, says):
    with pytest.raises(ValidationError) as error:
        validate_agent_properties(changes)
    assert field in error.value.message_dict
    assert says in " ".join(error.value.message_dict[field])


def test_several_bad_values_are_all_reported():
    with pytest.raises(ValidationError) as error:
        validate_agent_properties({"temperature": 9, "ragTopK": 99, "tools": ["nope"]})
    assert set(error.value.message_dict) == {"temperature", "ragTopK", "tools"}


def test_a_fallback_on_another_provider_is_accepted():
    cleaned = validate_agent_properties(
        {"fallbackProvider": "anthropic", "fallbackModel": "claude-haiku-4-5", "temperature": 1}
    )
    assert cleaned["fallbackModel"] == "claude-haiku-4-5"
    assert cleaned["temperature"] == 1.0


def test_services_refuse_bad_agent_properties_in_code(tenant_a):
    with pytest.raises(ValidationError) as error:
        services.thing_create(
            group=tenant_a.group, type=Thing.Type.AGENT, name="Broken",
            properties={"temperature": 7, "ragTopK": 0}, actor=tenant_a.owner,
        )  # fmt: skip
    assert set(error.value.message_dict) == {"temperature", "ragTopK"}
    with pytest.raises(ValidationError) as error:
        services.thing_update(
            thing=tenant_a.agent, actor=tenant_a.owner, properties={"maxTokens": -1}
        )
    assert "maxTokens" in error.value.message_dict
    with group_scope(tenant_a.group):
        assert Thing.objects.get(pk=tenant_a.agent.pk).properties["maxTokens"] == 1024
