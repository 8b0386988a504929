"""What a browser sign-in must remember between leaving for the provider and coming back, kept in a
short-lived encrypted cookie (no server-side session store, so any server process can finish it)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SIGN_IN_STATE_TTL_S", "SignInState", "SignInStateBox", "pkce_challenge"]

# How long a sign-in at the provider may take before its return is refused.
SIGN_IN_STATE_TTL_S = 600


class SignInState(msgspec.Struct, forbid_unknown_fields=True):
    state: str  # echoed by the provider: ties its answer to this browser (login CSRF)
    nonce: str  # echoed inside the ID token: ties the token to this sign-in (replay)
    code_verifier: str  # PKCE: only this browser's sign-in can redeem the code
    redirect_uri: str
    next: str

    @classmethod
    def fresh(cls, redirect_uri: str, next: str) -> SignInState:  # noqa: A002 (the query name)
        return cls(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                   code_verifier=secrets.token_urlsafe(64), redirect_uri=redirect_uri, next=next)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class SignInStateBox:
    """Seals a SignInState into a cookie value (encrypted and authenticated) and opens it, within its TTL."""

    def __init__(self, secret_key: str, *, ttl_s: int = SIGN_IN_STATE_TTL_S) -> None:
        # A key of its own, derived from the server secret for this one purpose.
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aicode:oidc-sign-in-state")
        self._fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))
        self._ttl_s = ttl_s

    def seal(self, state: SignInState) -> str:
        return self._fernet.encrypt(msgspec.json.encode(state)).decode()

    def open(self, sealed: str) -> SignInState | None:
        """The state, or None when it is forged, damaged or older than the TTL."""
        try:
            return msgspec.json.decode(self._fernet.decrypt(sealed.encode(), ttl=self._ttl_s), type=SignInState)
        except (InvalidToken, msgspec.DecodeError, msgspec.ValidationError):
            return None
