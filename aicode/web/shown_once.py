"""A secret a form has just made (an API token, a webhook secret), shown on the next page exactly once.

The form's post answers with a redirect (post/redirect/get: reloading the page never sends the form
again) and the secret rides along in a short-lived cookie, encrypted and bound to the user, scoped to the
page it is shown on; that page reads it and deletes it, so a reload or a later visit no longer shows it.
"""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Request, Response
from litestar.datastructures import Cookie

__all__ = ["SHOWN_ONCE_COOKIE", "ShownOnce"]

SHOWN_ONCE_COOKIE = "aicode_once"
# Time enough for the redirect to be followed, not for the secret to linger in the browser.
_TTL_S = 120


class _Sealed(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str
    values: dict[str, str]


class ShownOnce:
    """Puts values into the one-time cookie of a redirect and takes them out on the page it leads to."""

    def __init__(self, secret_key: str) -> None:
        # A key of its own, derived from the server secret for this one purpose.
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aicode:shown-once")
        self._fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))

    def keep(self, response: Response[Any], request: Request[Any, Any, Any], *, user_id: UUID, path: str,
             **values: str) -> Response[Any]:
        """`response` (the redirect to `path`) carrying `values` for `user_id`."""
        sealed = self._fernet.encrypt(msgspec.json.encode(_Sealed(user_id=str(user_id), values=values))).decode()
        response.set_cookie(Cookie(key=SHOWN_ONCE_COOKIE, value=sealed, path=path, httponly=True, samesite="strict",
                                   secure=request.url.scheme == "https", max_age=_TTL_S))
        return response

    def take(self, request: Request[Any, Any, Any], *, user_id: UUID) -> dict[str, str]:
        """The values kept for `user_id` on this page (none if there are none, they are stale or forged);
        the page's answer must then `forget` them."""
        sealed = request.cookies.get(SHOWN_ONCE_COOKIE)
        if not sealed:
            return {}
        try:
            kept = msgspec.json.decode(self._fernet.decrypt(sealed.encode(), ttl=_TTL_S), type=_Sealed)
        except (InvalidToken, msgspec.DecodeError, msgspec.ValidationError):
            return {}
        return kept.values if kept.user_id == str(user_id) else {}

    @staticmethod
    def forget(response: Response[Any], request: Request[Any, Any, Any], *, path: str) -> Response[Any]:
        """`response` deleting the cookie kept for `path` if the request carried one: shown once means once."""
        if SHOWN_ONCE_COOKIE in request.cookies:
            response.delete_cookie(SHOWN_ONCE_COOKIE, path=path)
        return response
