"""Secrets the server must use again (webhook signing secrets, the Authorization header
sent to a push receiver, private signing keys) are stored encrypted, never in clear.

The key is derived from ``SCIMGATE_EVENTS_KEY`` (default: ``SECRET_KEY``) with HKDF;
rotating it makes stored secrets unreadable (streams then need new secrets).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the events key changed)."""


@lru_cache(maxsize=4)
def _fernet(key_material: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"scimgate events secrets v1"
    ).derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _key() -> Fernet:
    return _fernet(getattr(settings, "SCIMGATE_EVENTS_KEY", "") or settings.SECRET_KEY)


def seal(secret: str) -> str:
    """Encrypt ``secret`` for storage ("" stays "")."""
    if not secret:
        return ""
    return _key().encrypt(secret.encode()).decode()


def unseal(stored: str) -> str:
    if not stored:
        return ""
    try:
        return _key().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with the current key") from exc
