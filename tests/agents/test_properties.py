from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator

from agents import catalog
from agents.properties import AGENT_DEFAULTS, AGENT_SCHEMA, validate_agent_properties
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
        (
            {"model": "deepseek-reasoner", "provider": "deepseek", "tools": ["createTask"]},
            "tools",
            "cannot call tools",
        ),
        ({"ragTopK": 0}, "ragTopK", "between 1 and 50"),
        ({"ragTopK": 51}, "ragTopK", "between 1 and 50"),
        ({"ragEnabled": "yes"}, "ragEnabled", "true or false"),
        ({"embeddingModel": "word2vec"}, "embeddingModel", "Unknown embedding model"),
        ({"toolCallTimeout": 0}, "toolCallTimeout", "positive number of seconds"),
        ({"requestTimeout": -5}, "requestTimeout", "positive number of seconds"),
        ({"maxConsecutiveToolCalls": 0}, "maxConsecutiveToolCalls", "between 1 and 50"),
        (
            {"fallbackProvider": "openai", "fallbackModel": "gpt-4o-mini"},
            "fallbackModel",
            "must differ",
        ),
        (
            {"fallbackProvider": "openai", "fallbackModel": "claude-haiku-4-5"},
            "fallbackModel",
            "not in the catalog for OpenAI",
        ),
        ({"temprature": 0.5}, "temprature", "Unknown property 'temprature'"),
        ({"systemPrompt": "x" * 20_001}, "systemPrompt", "at most 20000 characters"),
        ({"model": "x" * (catalog.MAX_MODEL_CHARS + 1)}, "model", "Model names can be at most"),
        ({"maxTokens": 1.0}, "maxTokens", "positive whole number"),
        ({"ragTopK": True}, "ragTopK", "between 1 and 50"),
        ({"temperature": float("nan")}, "temperature", "between 0 and 2"),
        ({"requestTimeout": float("inf")}, "requestTimeout", "at most 600"),
        ({"toolCallTimeout": 601}, "toolCallTimeout", "at most 600"),
        ({"maxConsecutiveToolCalls": 51}, "maxConsecutiveToolCalls", "between 1 and 50"),
        ({"knowledgeSources": [0]}, "knowledgeSources", "list of at most 500 source ids"),
        ({"knowledgeSources": list(range(1, 502))}, "knowledgeSources", "at most 500"),
        ({"fallbackProvider": "acme-ai"}, "fallbackProvider", "Unknown provider 'acme-ai'"),
        ({"fallbackModel": "gpt-4o"}, "fallbackProvider", "Unknown provider ''"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(changes, field, says):
    with pytest.raises(ValidationError) as error:
        validate_agent_properties(changes)
    assert field in error.value.message_dict
    assert says in " ".join(error.value.message_dict[field])


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"systemPrompt": 5}, "systemPrompt", "System prompt must be text."),
        ({"ragTopK": "5"}, "ragTopK", "Top-k must be a whole number between 1 and 50."),
        ({"ragEnabled": 1}, "ragEnabled", "RAG enabled must be true or false."),
        ({"tools": ["createTask", 3]}, "tools", "Tools must be a list of tool names."),
        ({"model": 5}, "model", "Model 5 is not in the catalog for OpenAI."),
        (
            {"requestTimeout": "60"},
            "requestTimeout",
            "Request timeout must be a positive number of seconds, at most 600.",
        ),
        (
            {"knowledgeSources": "1"},
            "knowledgeSources",
            "Knowledge sources must be a list of at most 500 source ids.",
        ),
    ],
)
def test_a_value_of_the_wrong_type_gets_one_plain_sentence(changes, field, message):
    with pytest.raises(ValidationError) as error:
        validate_agent_properties(changes)
    assert error.value.message_dict == {field: [message]}


def test_each_unknown_property_is_refused_under_its_own_name():
    with pytest.raises(ValidationError) as error:
        validate_agent_properties({"temprature": 0.5, "max_tokens": 10, "model": "gpt-4o"})
    assert set(error.value.message_dict) == {"temprature", "max_tokens"}
    [message] = error.value.message_dict["max_tokens"]
    assert message.startswith("Unknown property 'max_tokens'. Known properties: embeddingModel,")


def test_the_schema_is_valid_json_schema_covering_every_property():
    Draft202012Validator.check_schema(AGENT_SCHEMA)
    assert set(AGENT_SCHEMA["properties"]) == set(AGENT_DEFAULTS)
    assert all("errorMessage" in rule for rule in AGENT_SCHEMA["properties"].values())


def test_cleaning_drops_repeats_and_stores_plain_numbers():
    cleaned = validate_agent_properties(
        {
            "tools": ["createTask", "searchKnowledge", "createTask"],
            "knowledgeSources": [9, 3, 9],
            "temperature": Decimal("0.5"),
        }
    )
    assert cleaned["tools"] == ["createTask", "searchKnowledge"]
    assert cleaned["knowledgeSources"] == [3, 9]
    assert cleaned["temperature"] == 0.5 and isinstance(cleaned["temperature"], float)


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
            group=tenant_a.group,
            type=Thing.Type.AGENT,
            name="Broken",
            properties={"temperature": 7, "ragTopK": 0},
            actor=tenant_a.owner,
        )
    assert set(error.value.message_dict) == {"temperature", "ragTopK"}
    with pytest.raises(ValidationError) as error:
        services.thing_update(
            thing=tenant_a.agent, actor=tenant_a.owner, properties={"maxTokens": -1}
        )
    assert "maxTokens" in error.value.message_dict
    with group_scope(tenant_a.group):
        assert Thing.objects.get(pk=tenant_a.agent.pk).properties["maxTokens"] == 1024
