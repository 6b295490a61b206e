"""Encryption at rest for the API keys groups store in Parley (Fernet, from `cryptography`)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    secret = settings.PARLEY_ENCRYPTION_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(f"parley-credentials:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str | None:
    """The key, or None when it was encrypted under another secret (rotated)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None
