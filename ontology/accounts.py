"""A person's own account: ending their other sessions, and the audit of password changes
and resets (Django's auth views do the changing; config/urls.py wires them)."""

from __future__ import annotations

from django.contrib.auth import update_session_auth_hash
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from ontology.events import EventType
from ontology.models import User
from ontology.services import user_event_record


@transaction.atomic
def sessions_end_others(*, request: HttpRequest) -> None:
    """Sign the person out of every other browser: each session's check includes
    `User.session_generation` (User.get_session_auth_hash), so raising it fails them all;
    this one is then re-signed and stays."""
    user: User = request.user
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    user.refresh_from_db(fields=["session_generation"])
    update_session_auth_hash(request, user)
    user_event_record(user=user, type=EventType.USER_SESSIONS_ENDED, request=request)


def password_changed_record(*, request: HttpRequest) -> None:
    user_event_record(user=request.user, type=EventType.USER_PASSWORD_CHANGED, request=request)


def password_reset_record(*, user: User, request: HttpRequest) -> None:
    user_event_record(user=user, type=EventType.USER_PASSWORD_RESET, request=request)
