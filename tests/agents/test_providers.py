"""Provider plumbing that needs no network: error mapping, keys, encryption, clients."""

import asyncio
import ssl

import anthropic
import httpx2
import openai
import pytest

from agents.encryption import decrypt, encrypt
from agents.models import ProviderCredential
from agents.providers import ProviderError, provider_error_from, resolve_endpoint
from agents.providers.registry import Endpoint, chat_provider, close_clients, tls_context
from agents.tokens import count_tokens


def status_error(module, cls, status, body, headers=None):
    request = httpx2.Request("POST", "http://provider.test/v1/x")
    response = httpx2.Response(status, json=body, headers=headers or {}, request=request)
    return cls(str(body), response=response, body=body)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            status_error(openai, openai.RateLimitError, 429, {}, {"retry-after": "1"}),
            "provider_rate_limited",
        ),
        (status_error(openai, openai.AuthenticationError, 401, {}), "auth"),
        (
            status_error(
                openai, openai.BadRequestError, 400, {"error": {"code": "context_length_exceeded"}}
            ),
            "context_length",
        ),
        (
            status_error(openai, openai.BadRequestError, 400, {"error": {"code": "x"}}),
            "invalid_request",
        ),
        (status_error(openai, openai.InternalServerError, 500, {}), "provider_unavailable"),
        (status_error(anthropic, anthropic.InternalServerError, 529, {}), "provider_unavailable"),
        (
            status_error(
                anthropic,
                anthropic.BadRequestError,
                400,
                {"error": {"message": "prompt is too long: 9 tokens > 5 maximum"}},
            ),
            "context_length",
        ),
        (openai.APITimeoutError(request=httpx2.Request("POST", "http://x")), "timeout"),
        (
            anthropic.APIConnectionError(request=httpx2.Request("POST", "http://x")),
            "provider_unavailable",
        ),
        (RuntimeError("stream broke"), "provider_unavailable"),
    ],
)
def test_sdk_errors_map_to_stable_codes(exc, code):
    error = provider_error_from(exc)
    assert isinstance(error, ProviderError) and error.code == code


def test_rate_limits_carry_retry_after():
    exc = status_error(openai, openai.RateLimitError, 429, {}, {"retry-after": "3"})
    error = provider_error_from(exc)
    assert (error.retry_after, error.retryable) == (3.0, True)
    assert not provider_error_from(
        status_error(openai, openai.AuthenticationError, 401, {})
    ).retryable


def test_keys_are_encrypted_at_rest_and_bound_to_the_secret(settings):
    token = encrypt("sk-live-123")
    assert "sk-live-123" not in token
    assert decrypt(token) == "sk-live-123"
    settings.PARLEY_ENCRYPTION_KEY = "another secret"
    assert decrypt(token) is None


def test_a_groups_own_key_wins_over_the_environment(tenant_a, tenant_b, settings):
    settings.PARLEY_PROVIDER_API_KEYS = {**settings.PARLEY_PROVIDER_API_KEYS, "openai": "env-key"}
    ProviderCredential.objects.create(
        group=tenant_a.group,
        provider="openai",
        encrypted_api_key=encrypt("group-key"),
        key_hint="-key",
        base_url="https://proxy.example/v1",
    )
    mine = resolve_endpoint("openai", group=tenant_a.group)
    theirs = resolve_endpoint("openai", group=tenant_b.group)
    assert (mine.api_key, mine.base_url) == ("group-key", "https://proxy.example/v1")
    assert (theirs.api_key, theirs.base_url) == ("env-key", None)
    assert "group-key" not in repr(mine)


def test_no_key_anywhere_is_an_auth_error(tenant_a, settings):
    settings.PARLEY_PROVIDER_API_KEYS = {**settings.PARLEY_PROVIDER_API_KEYS, "anthropic": ""}
    with pytest.raises(ProviderError) as error:
        resolve_endpoint("anthropic", group=tenant_a.group)
    assert error.value.code == "auth"


async def test_embeddings_through_the_provider_interface(simulator):
    from agents.providers import Endpoint, chat_provider

    provider = chat_provider(Endpoint("simulator", "openai", "key", simulator.openai_base_url))
    result = await provider.embed(model="text-embedding-3-small", texts=["refunds", "travel"])
    assert [len(v) for v in result.vectors] == [1536, 1536]
    assert result.input_tokens == count_tokens("refunds") + count_tokens("travel")
    again = await provider.embed(model="text-embedding-3-small", texts=["refunds"])
    assert again.vectors[0] == result.vectors[0]


def test_an_unreadable_group_key_never_falls_back_to_the_platform_key(tenant_a, settings):
    settings.PARLEY_PROVIDER_API_KEYS = {**settings.PARLEY_PROVIDER_API_KEYS, "openai": "env-key"}
    ProviderCredential.objects.create(
        group=tenant_a.group,
        provider="openai",
        encrypted_api_key=encrypt("group-key"),
        base_url="https://tenant-chosen.example/v1",
    )
    settings.PARLEY_ENCRYPTION_KEY = "rotated"
    with pytest.raises(ProviderError) as error:
        resolve_endpoint("openai", group=tenant_a.group)
    assert error.value.code == "auth" and "enter it again" in error.value.message


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("overloaded_error", "provider_unavailable"),
        ("rate_limit_error", "provider_rate_limited"),
        ("api_error", "provider_unavailable"),
        ("invalid_request_error", "invalid_request"),
    ],
)
def test_an_error_event_inside_a_200_stream_is_classified_by_its_type(kind, code):
    body = {"type": "error", "error": {"type": kind, "message": "x"}}
    exc = status_error(anthropic, anthropic.APIStatusError, 200, body)
    assert provider_error_from(exc).code == code


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("public_only", [False, True])
def test_clients_of_every_event_loop_share_one_tls_context(provider, public_only):
    """A client is made per event loop, and a Celery task makes a loop per task (a thread's
    title): the certificates are read once per process, not once per client."""
    wire = "anthropic" if provider == "anthropic" else "openai"
    endpoint = Endpoint(
        provider=provider,
        wire=wire,
        api_key="sk-test",
        base_url="https://provider.test/v1",
        public_only=public_only,
    )

    async def made_here() -> list[ssl.SSLContext]:
        client = chat_provider(endpoint).client
        try:
            transport = client._client._transport
            session = transport.get_client()  # what it connects with (made on first use)
            contexts = [transport.ssl_context, session.connector._ssl]
            await session.close()
            return contexts
        finally:
            await close_clients()

    first, second = asyncio.run(made_here()), asyncio.run(made_here())
    shared = tls_context()
    assert all(context is shared for context in first + second)
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
