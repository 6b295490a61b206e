"""Write paths for agents' own rows: provider credentials (knowledge: agents.ingestion)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents import addresses, catalog
from agents.encryption import encrypt
from agents.models import ProviderCredential
from ontology.events import EventType
from ontology.models import Group, User
from ontology.scoping import ensure_group_allowed, group_scope
from ontology.services import event_record
from ontology.versions import bump_group_version


def check_base_url(url: str) -> None:
    """Refuse endpoints on private or local addresses: the server would call them for a tenant.

    A name is resolved now for a clear refusal; the connections check it again each time
    (the name may change what it points to), see agents/addresses.py.
    """
    if not url or settings.PARLEY_ALLOW_PRIVATE_BASE_URLS:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError({"base_url": "Enter a full http(s) URL."})
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise ValidationError({"base_url": "Endpoints on local or internal hosts are not allowed."})
    try:
        found = addresses.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except addresses.AddressRefused:
        return  # not resolvable today: every connection resolves and checks it
    if not all(addresses.is_public(address) for address in found):
        raise ValidationError({"base_url": "Endpoints on private addresses are not allowed."})


@transaction.atomic
def credential_set(
    *, group: Group, provider: str, api_key: str, base_url: str = "", actor: User | None
) -> ProviderCredential:
    """Store (or replace) a group's key for a provider, encrypted. The key is never audited."""
    ensure_group_allowed(group)
    if provider not in catalog.PROVIDERS:
        raise ValidationError({"provider": f"Unknown provider {provider!r}."})
    check_base_url(base_url)
    api_key = api_key.strip()
    if len(api_key) < 8:
        raise ValidationError({"api_key": "That does not look like an API key."})
    with group_scope(group):
        credential = ProviderCredential.objects.filter(provider=provider).first()
    created = credential is None
    credential = credential or ProviderCredential(group=group, provider=provider)
    credential.encrypted_api_key = encrypt(api_key)
    credential.key_hint = api_key[-4:]
    credential.base_url = base_url
    credential.updated_at = timezone.now()
    credential.save()
    event_record(
        group=group,
        type=EventType.CREDENTIAL_CREATED if created else "credential.updated",
        actor=actor,
        target=credential,
        metadata={"provider": provider, "base_url": base_url},
    )
    bump_group_version(group.pk)
    return credential


@transaction.atomic
def credential_delete(*, credential: ProviderCredential, actor: User | None) -> None:
    ensure_group_allowed(credential.group)
    event_record(
        group=credential.group,
        type=EventType.CREDENTIAL_DELETED,
        actor=actor,
        target=credential,
        metadata={"provider": credential.provider},
    )
    bump_group_version(credential.group_id)
    credential.delete()
