"""The server's secret key and the box that encrypts secrets at rest with it."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "csrf_signing_key", "jwt_signing_key", "load_or_create_secret_key", "secret_key_fingerprint",
           "store_secret_key"]

_KEY_FILE = "secret_key"


def load_or_create_secret_key(data_dir: Path, configured: str | None) -> str:
    """The configured key, else the one kept in `<data_dir>/secret_key`, generated (0600) on first use."""
    if configured:
        return configured
    path = data_dir / _KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: if two processes race on a first start, one wins and the other reads its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def store_secret_key(data_dir: Path, key: str) -> None:
    """Keep `key` as the data dir's secret key (a restore); FileExistsError if the data dir has one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / _KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


def _derive(secret_key: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aicode:" + purpose)
    return hkdf.derive(secret_key.encode())


class SecretBox:
    """Encrypts small secrets (repository tokens, model credentials) for storage in the database."""

    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"secrets-at-rest")))

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted: was AICODE_SECRET_KEY changed?") from None


def jwt_signing_key(secret_key: str) -> str:
    """A key for signing JWTs, separate from the encryption key though both come from one secret."""
    return base64.urlsafe_b64encode(_derive(secret_key, b"jwt-signing")).decode()


def csrf_signing_key(secret_key: str) -> str:
    """A key for signing CSRF tokens, independent of the JWT and encryption keys."""
    return base64.urlsafe_b64encode(_derive(secret_key, b"csrf-signing")).decode()


def secret_key_fingerprint(secret_key: str) -> str:
    """Names the secret without revealing it: nodes sharing a database compare these, since a node
    with another key could neither read the stored credentials nor accept the others' sign-ins."""
    return _derive(secret_key, b"node-fingerprint")[:12].hex()
