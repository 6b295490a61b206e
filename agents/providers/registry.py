"""Which client talks to which provider, with whose key.

Keys come from the group's own stored credential when it has one, else from the
environment (settings). Clients are reused per event loop: each holds a
connection pool, and building one per call would cost milliseconds. The TLS context
they connect with is the process's one (`tls_context`): a loop that lives for one
task (a Celery title) makes its clients again, but not the certificates.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
import weakref
from dataclasses import dataclass
from importlib import import_module

import aiohttp
import anthropic
import openai
from anthropic import AsyncAnthropic
from django.conf import settings
from httpx2 import create_ssl_context
from openai import AsyncOpenAI

from agents import catalog
from agents.addresses import PublicOnlyResolver
from agents.providers.anthropic_wire import AnthropicWire
from agents.providers.base import ChatProvider, ProviderError
from agents.providers.openai_wire import OpenAIWire


@dataclass(frozen=True)
class Endpoint:
    provider: str
    wire: str
    api_key: str
    base_url: str | None
    # A tenant's own URL: its name may only resolve to public addresses (agents/addresses.py).
    public_only: bool = False

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint({self.provider!r}, {self.base_url!r})"


@dataclass(frozen=True)
class StoredCredential:
    """A group's own key for a provider, still encrypted."""

    encrypted_api_key: str
    base_url: str


def stored_credentials(group) -> dict[str, StoredCredential]:
    from agents.models import ProviderCredential
    from ontology.scoping import group_scope

    with group_scope(group):
        rows = ProviderCredential.objects.values_list("provider", "encrypted_api_key", "base_url")
        return {provider: StoredCredential(key, url) for provider, key, url in rows}


def resolve_endpoint(
    provider: str, *, group=None, credentials: dict[str, StoredCredential] | None = None
) -> Endpoint:
    """Find the key and URL for `provider`: the group's own credential, else the environment.

    Pass `credentials` when they were already loaded (the agent loop reads them
    with the thread, in one round trip); otherwise they are read for `group`.
    """
    from agents.encryption import decrypt

    info = catalog.PROVIDERS.get(provider)
    if info is None:
        raise ProviderError("invalid_request", f"Unknown provider {provider!r}.")
    if credentials is None:
        credentials = stored_credentials(group) if group is not None else {}
    base_url = settings.PARLEY_PROVIDER_BASE_URLS.get(provider) or info.base_url
    public_only = False
    credential = credentials.get(provider)
    if credential is not None:
        # The group's key goes with the group's URL; the platform's key never does.
        api_key = decrypt(credential.encrypted_api_key) or ""
        if not api_key:
            raise ProviderError(
                "auth", f"The stored {info.label} key can no longer be read; enter it again."
            )
        base_url = credential.base_url or base_url
        public_only = bool(credential.base_url) and not settings.PARLEY_ALLOW_PRIVATE_BASE_URLS
    else:
        api_key = settings.PARLEY_PROVIDER_API_KEYS.get(provider, "")
    if not api_key:
        raise ProviderError(
            "auth", f"No API key is configured for {info.label}. Ask an administrator to add one."
        )
    if info.scenarios and not base_url:
        raise ProviderError(
            "provider_unavailable", "The provider simulator is not running (PARLEY_SIMULATOR_URL)."
        )
    return Endpoint(
        provider=provider,
        wire=info.wire,
        api_key=api_key,
        base_url=base_url or None,
        public_only=public_only,
    )


_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chat_provider(endpoint: Endpoint) -> ChatProvider:
    """A provider bound to this event loop's cached client for the endpoint."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key_digest = hashlib.sha256(endpoint.api_key.encode()).hexdigest()
    cache_key = (endpoint.wire, endpoint.base_url, key_digest, endpoint.public_only)
    client = per_loop.get(cache_key)
    if client is None:
        # The SDKs' aiohttp transport: aiohttp parses the HTTP stream in C, where httpx
        # spent most of a streamed token's CPU in Python (h11, anyio timeouts per read).
        if endpoint.wire == "anthropic":
            client = AsyncAnthropic(
                api_key=endpoint.api_key,
                base_url=endpoint.base_url,
                max_retries=0,
                http_client=_http_client(anthropic, endpoint.public_only),
            )
        else:
            client = AsyncOpenAI(
                api_key=endpoint.api_key,
                base_url=endpoint.base_url,
                max_retries=0,
                http_client=_http_client(openai, endpoint.public_only),
            )
        per_loop[cache_key] = client
    if endpoint.wire == "anthropic":
        return AnthropicWire(client)
    param = "max_completion_tokens" if endpoint.provider == "openai" else "max_tokens"
    return OpenAIWire(client, max_tokens_param=param)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every provider client of the process, made once, as the SDKs
    make theirs (the system's CA certificates, or SSL_CERT_FILE's). Making them reads and
    parses the certificates (about 50 ms of CPU on a small machine: bench/title_task.py),
    and a client is made per event loop: a Celery task's `asyncio.run` (a thread's title,
    a batch of embeddings) made one per task. A context may be shared by threads and
    loops; nothing changes it once made."""
    return create_ssl_context()


def prepare() -> None:
    """The process's one-time set-up for provider clients, done as a web process starts
    (config.asgi) rather than on its event loop in the first turns, where it held up every
    other socket of the process: the TLS context and the SDK modules a client imports on
    its first call (openai loads its resources lazily). With the rest of a process's
    start (config.asgi.prepare_process), 56-59 ms of CPU on the development machine. No
    network, no event loop: the clients made here are never used, and their sessions are
    made by a first request that never comes."""
    tls_context()
    openai_client = AsyncOpenAI(api_key="-", max_retries=0, http_client=_http_client(openai, False))
    openai_client.chat.completions  # noqa: B018 (imports the resource and its stream types)
    anthropic_client = AsyncAnthropic(
        api_key="-", max_retries=0, http_client=_http_client(anthropic, False)
    )
    anthropic_client.messages  # noqa: B018
    # anthropic's calls carry their trace context: OpenTelemetry's propagators, imported
    # by its first call.
    import_module("opentelemetry.propagate")


def _http_client(sdk, public_only: bool):
    """The SDK's aiohttp client; for a tenant's own endpoint, one that connects only to public
    addresses, checked by the resolver whose answer aiohttp connects to. That client is the
    SDK's own aiohttp transport (each SDK vendors one; versions pinned in constraints.txt)
    over a session with that resolver, connecting directly: a proxy from the environment
    would resolve the name again, out of reach of the check."""
    if not public_only:
        return sdk.DefaultAioHttpClient(verify=tls_context())
    transport = import_module(f"{sdk.__name__}._vendor.httpx_aiohttp").AiohttpTransport

    def session() -> aiohttp.ClientSession:  # made on the loop that first sends a request
        connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(), ssl=tls_context())
        return aiohttp.ClientSession(connector=connector)

    return sdk.DefaultAioHttpClient(
        transport=transport(client=session, verify=tls_context()), trust_env=False
    )


async def close_clients() -> None:
    """Close this event loop's clients, so a short-lived loop (`asyncio.run`) ends clean."""
    per_loop = _clients.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.close()
