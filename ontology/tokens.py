"""Personal API tokens: making, revoking and checking them (the model is ontology.models.ApiToken).

A secret looks like `prl_` + 40 base62 characters, so secret scanners can find a leaked
one; only its SHA-256 is stored (a 238-bit random secret needs no slow hash). A token
works while it is not revoked or expired, its user is active and still a member of its
group: every use checks all four, so any of them ends it at once (a process that keeps
what it read, ontology.token_cache, checks the token's version in Redis on every use, and
each of these changes bumps it: `bump_token_versions`, `forget_admissions`). Open sockets
hear of a revocation, a removed membership or a deactivated user on the channel layer
(`token_channel_group`) and close with 4401.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from ontology.events import EventType
from ontology.models import ApiToken, Group, Membership, User
from ontology.scoping import group_scope, scopes_disabled
from ontology.services import event_record
from ontology.versions import bump_token_versions

logger = logging.getLogger(__name__)

PREFIX = "prl_"
SECRET_CHARS = 40
SHOWN_CHARS = 8  # of the secret after the prefix, kept to tell tokens apart in lists
SECRET_PATTERN = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{SECRET_CHARS}}}$")
ALPHABET = string.digits + string.ascii_letters
LAST_USED_EVERY = timedelta(seconds=60)  # last use is written at most once a minute
MAX_TOKENS_PER_USER = 50
ALL_SCOPES = tuple(ApiToken.Scope.values)
REVOKED = "token.revoked"  # the channel-layer message an open socket closes on


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_channel_group(token_id: int) -> str:
    """The channel-layer group of the sockets a token opened."""
    return f"api-token.{token_id}"


def _new_secret() -> str:
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(SECRET_CHARS))


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = sorted(set(scopes))
    unknown = [scope for scope in wanted if scope not in ALL_SCOPES]
    if unknown or not wanted:
        raise ValidationError({"scopes": f"Choose at least one of: {', '.join(ALL_SCOPES)}."})
    return wanted


# --- writes --------------------------------------------------------------------------------


@transaction.atomic
def token_create(
    *,
    group: Group,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    actor: User | None,
) -> tuple[ApiToken, str]:
    """A new token for `user` in `group` and its secret, which is never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": "Give the token a name of at most 100 characters."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    with group_scope(group):
        if not Membership.objects.filter(user=user).exists():
            raise ValidationError({"user": f"{user} is not a member of {group}."})
        if ApiToken.objects.filter(user=user, revoked_at=None).count() >= MAX_TOKENS_PER_USER:
            raise ValidationError(
                f"You have {MAX_TOKENS_PER_USER} tokens already; revoke one first."
            )
        secret = _new_secret()
        token = ApiToken.objects.create(
            group=group,
            user=user,
            name=name,
            prefix=secret[: len(PREFIX) + SHOWN_CHARS],
            digest=digest_of(secret),
            scopes=_clean_scopes(scopes),
            expires_at=expires_at,
        )
        event_record(
            group=group,
            type=EventType.API_TOKEN_CREATED,
            actor=actor,
            target=token,
            metadata={
                "user_id": user.pk,
                "scopes": token.scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, secret


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User | None) -> ApiToken:
    """Revoke the token (a second revoke changes nothing); its open sockets close."""
    with group_scope(token.group):
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db(fields=["revoked_at"])
        if updated:
            event_record(
                group=token.group,
                type=EventType.API_TOKEN_REVOKED,
                actor=actor,
                target=token,
                metadata={"user_id": token.user_id},
            )
            close_token_sockets([token.pk])
            bump_token_versions([token.digest])
    return token


def close_token_sockets(token_ids: Iterable[int]) -> None:
    """Once the transaction commits, tell every socket these tokens opened to close (4401).
    Each socket also checks its token before every write, so a lost message only delays
    closing, never lets a write through."""
    ids = list(token_ids)
    if ids:
        transaction.on_commit(lambda: _send_revoked(ids))


def _send_revoked(token_ids: list[int]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for token_id in token_ids:
        try:
            async_to_sync(layer.group_send)(token_channel_group(token_id), {"type": REVOKED})
        except Exception:  # Redis is away: the socket's next write finds the token dead
            logger.exception("could not tell the sockets of token %s to close", token_id)


def tokens_of(*, user: User | int, group: Group | int | None = None) -> list[int]:
    """Ids of the user's live tokens (in one group, or in all)."""
    with scopes_disabled():
        tokens = ApiToken.objects.filter(user=user, revoked_at=None)
        if group is not None:
            tokens = tokens.filter(group=group)
        return list(tokens.values_list("pk", flat=True))


def forget_admissions(*, user: User | int | None = None, group: Group | int | None = None) -> None:
    """Once this commits, no process admits the user's tokens (in one group, or in all), or
    the group's, from its cache (ontology.token_cache): the next use asks the database."""
    if user is None and group is None:
        raise ValueError("Name the user or the group whose tokens changed.")
    with scopes_disabled():
        tokens = ApiToken.objects.all()
        if user is not None:
            tokens = tokens.filter(user=user)
        if group is not None:
            tokens = tokens.filter(group=group)
        bump_token_versions(list(tokens.values_list("digest", flat=True)))


# --- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenAccess:
    """Who a valid token speaks for: its user, its group (with `.role`) and its scopes."""

    token: ApiToken
    user: User
    group: Group

    def allows(self, scope: str) -> bool:
        return scope in self.token.scopes


def bearer_secret(authorization: str | None) -> str | None:
    """The token in an `Authorization: Bearer prl_…` header value, if it has that shape."""
    if not authorization:
        return None
    kind, _, value = authorization.strip().partition(" ")
    if kind.lower() != "bearer":
        return None
    value = value.strip()
    return value if SECRET_PATTERN.match(value) else None


# Every API request runs this, so it is one hand-written statement: the ORM took longer to
# build it (three models, a subquery) than the database took to answer it.
TOKEN_FIELDS = ("id", "group_id", "user_id", "name", "prefix", "scopes", "created_at")
TOKEN_FIELDS += ("expires_at", "last_used_at", "revoked_at")
GROUP_FIELDS = ("id", "name", "slug", "type", "plan", "properties", "created_at")
USER_FIELDS = ("id", "last_login", "is_superuser", "username", "first_name", "last_name")
USER_FIELDS += ("email", "is_staff", "is_active", "date_joined", "display_name", "preferences")
# What makes a token live, in one place: not revoked, not expired, its user active and
# still a member of its group.
_LIVE = """
FROM ontology_apitoken t
JOIN ontology_membership m ON m.group_id = t.group_id AND m.user_id = t.user_id
JOIN ontology_group g ON g.id = t.group_id
JOIN ontology_user u ON u.id = t.user_id AND u.is_active
WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %(now)s)
"""
_AUTHENTICATE = (
    """
SELECT m.role,
       t.id, t.group_id, t.user_id, t.name, t.prefix, t.scopes, t.created_at,
       t.expires_at, t.last_used_at, t.revoked_at,
       g.id, g.name, g.slug, g.type, g.plan, g.properties, g.created_at,
       u.id, u.last_login, u.is_superuser, u.username, u.first_name, u.last_name,
       u.email, u.is_staff, u.is_active, u.date_joined, u.display_name, u.preferences
"""  # the columns, in the order of the three tuples above
    + _LIVE
    + "AND t.digest = %(digest)s"
)
_STILL_LIVE = "SELECT 1 " + _LIVE + "AND t.id = %(id)s"
JSON_FIELDS = {"scopes", "properties", "preferences"}


def _instance(model, fields: tuple[str, ...], values: tuple | list) -> Any:
    values = [
        json.loads(value) if name in JSON_FIELDS and isinstance(value, str) else value
        for name, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, fields, values)


def access_of(role: str, token: tuple, group: tuple, user: tuple) -> TokenAccess:
    """A TokenAccess built from column values (in the order of the three tuples above)."""
    token = _instance(ApiToken, TOKEN_FIELDS, token)
    group = _instance(Group, GROUP_FIELDS, group)
    user = _instance(User, USER_FIELDS, user)
    group.role = role
    token.group, token.user = group, user
    return TokenAccess(token=token, user=user, group=group)


def authenticate(secret: str | None) -> TokenAccess | None:
    """The access a secret grants, or None (unknown, revoked, expired, user inactive or no
    longer a member: all alike). One query; the first use is audited. The user's password
    hash is not read (it is loaded if anything asks for it). Always asks the database:
    ontology.token_cache keeps what it answered."""
    if not secret or not SECRET_PATTERN.match(secret):
        return None
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_AUTHENTICATE, {"digest": digest_of(secret), "now": now})
        row = cursor.fetchone()
    if row is None:
        return None
    split, second = 1 + len(TOKEN_FIELDS), 1 + len(TOKEN_FIELDS) + len(GROUP_FIELDS)
    access = access_of(row[0], row[1:split], row[split:second], row[second:])
    _record_use(access.token, now)
    return access


def _record_use(token: ApiToken, now: datetime) -> None:
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    with group_scope(token.group), transaction.atomic():
        first = token.last_used_at is None
        updated = ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(
            last_used_at=now
        )
        if first and updated:
            event_record(
                group=token.group,
                type=EventType.API_TOKEN_FIRST_USED,
                actor=token.user,
                target=token,
                metadata={"user_id": token.user_id},
            )
    token.last_used_at = now


def still_valid(token_id: int) -> bool:
    """Is the token still live (the same rule as authenticate)? For a socket's writes, which
    must stop the moment it ends."""
    with connection.cursor() as cursor:
        cursor.execute(_STILL_LIVE, {"id": token_id, "now": timezone.now()})
        return cursor.fetchone() is not None


def tokens_for_list(*, group: Group, user: User, all_of_group: bool) -> list[ApiToken]:
    """The tokens a settings page lists: one's own, or (owners, admins) the whole group's."""
    with group_scope(group):
        tokens = ApiToken.objects.select_related("user")
        if not all_of_group:
            tokens = tokens.filter(user=user)
        return list(tokens)


def token_for_manage(*, group: Group, user: User, token_id: int, manager: bool) -> ApiToken | None:
    """A token the person may revoke: their own, or any of the group's for its managers."""
    with group_scope(group):
        tokens = ApiToken.objects.select_related("user", "group")
        if not manager:
            tokens = tokens.filter(user=user)
        return tokens.filter(pk=token_id).first()
