"""Verification of JWTs signed by an external identity provider: asymmetric algorithms only, keys from its JWKS."""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from aicode.auth.sso.jwks import JwksCache, SigningKeyUnknown
from aicode.errors import AuthenticationError

__all__ = ["EXTERNAL_ALGORITHMS", "JwtVerifier", "TokenRejected", "token_algorithm"]

# RS256 and ES256 only. Never `none`, and never HS*: with a symmetric algorithm the "secret" would be
# the provider's public key, which anyone can fetch (the classic algorithm-confusion forgery).
EXTERNAL_ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES = {"RS256": RSAPublicKey, "ES256": EllipticCurvePublicKey}
# Clock skew tolerated between this server and the identity provider, in seconds.
LEEWAY_S = 30


class TokenRejected(AuthenticationError):
    """An external token that does not verify; `detail` says why (and never contains the token)."""


def token_algorithm(token: str) -> str | None:
    """The `alg` its (unverified) header names, or None when it has no readable header."""
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except PyJWTError:
        return None
    return alg if isinstance(alg, str) else None


class JwtVerifier:
    """Checks signature (by `kid`, through the JWKS), `exp`, `sub`, and `iss` / `aud` when given."""

    def __init__(self, keys: JwksCache, *, issuer: str | None, audience: str | None) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; TokenRejected otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise TokenRejected("malformed token: not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in EXTERNAL_ALGORITHMS:
            raise TokenRejected(f"token algorithm {alg!r} is not accepted: external tokens must be RS256 or ES256")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed token: its key id is not a string")
        try:
            jwk = await self.keys.key(kid)
        except SigningKeyUnknown as exc:
            raise TokenRejected(str(exc)) from None
        # The key's own algorithm (declared, or implied by its type and curve) must be the token's.
        if jwk.algorithm_name != alg or not isinstance(jwk.key, _KEY_TYPES[alg]):
            raise TokenRejected(f"token algorithm {alg} does not match its signing key")
        claims = self._decode(token, jwk.key, alg)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise TokenRejected("token has no usable 'sub' claim")
        return claims

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        required = ["exp", "sub"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        try:
            return jwt.decode(
                token, key, algorithms=[alg], issuer=self.issuer, audience=self.audience, leeway=LEEWAY_S,
                options={"require": required, "verify_aud": self.audience is not None},
            )
        except ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except ImmatureSignatureError:
            raise TokenRejected("token is not valid yet (nbf/iat in the future)") from None
        except InvalidIssuerError:
            raise TokenRejected(f"token issuer is not {self.issuer}") from None
        except InvalidAudienceError:
            raise TokenRejected(f"token audience is not {self.audience}") from None
        except MissingRequiredClaimError as exc:
            raise TokenRejected(f"token has no {exc.claim!r} claim") from None
        except InvalidSignatureError:
            raise TokenRejected("token signature does not verify") from None
        except DecodeError:
            raise TokenRejected("malformed token") from None
        except PyJWTError as exc:
            raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
