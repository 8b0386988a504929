"""A small OpenID Connect identity provider for tests, served by aiohttp in a thread of its own.

It serves discovery, a JWKS (RSA and EC keys made with `cryptography`, rotated on demand), an
`/authorize` that approves at once (or denies, when told to) and a `/token` that checks the client
secret, the code and the PKCE verifier before it issues an ID token. Routes live under `base_path`,
so `FakeIdentityProvider(base_path="/auth/v1")` has a Supabase project's layout (issuer
`<url>/auth/v1`, keys at `/auth/v1/.well-known/jwks.json`). `mint()` signs access tokens with any
claims, key and algorithm; `unsigned_token()` and `hmac_token()` make the forgeries.

It has its own thread and event loop (unlike mock_anthropic) because Litestar's AsyncTestClient blocks
the test's loop while the app handles a request, and the app calls this provider during requests.

    async with FakeIdentityProvider() as idp:
        idp.user = {"sub": "u-1", "email": "ada@example.com", "groups": ["aicode-admins"]}
        token = idp.mint(aud="authenticated")
        ...  # point AICODE_JWT_JWKS_URL at idp.jwks_url, AICODE_OIDC_ISSUER at idp.issuer
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import BasicAuth, web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = ["FakeIdentityProvider", "SigningKey", "hmac_token", "unsigned_token"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def unsigned_token(claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """An `alg: none` token: header and claims, no signature."""
    return _segments({"alg": "none", "typ": "JWT", **(headers or {})}, claims) + "."


def hmac_token(claims: dict[str, Any], secret: bytes, headers: dict[str, Any] | None = None) -> str:
    """An HS256 token keyed with arbitrary bytes, e.g. a provider's public key (PyJWT refuses to)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", **(headers or {})}, claims)
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


@dataclass
class SigningKey:
    """A private key, its key id and its algorithm (RS256 or ES256)."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str = "RS256", kid: str | None = None) -> SigningKey:
        if alg == "RS256":
            private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"the fake provider signs with RS256 or ES256, not {alg}")
        return cls(kid=kid or f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, private_key=private_key)

    def public_jwk(self) -> dict[str, Any]:
        to_jwk = RSAAlgorithm.to_jwk if self.alg == "RS256" else ECAlgorithm.to_jwk
        return {**to_jwk(self.private_key.public_key(), as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


@dataclass
class Authorization:
    """What `/authorize` was asked for one code."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    claims: dict[str, Any]


@dataclass
class FakeIdentityProvider:
    """The provider, listening on host:port (0: any free port) once started."""

    base_path: str = ""
    client_id: str = "aicode-test"
    client_secret: str = "idp-test-secret"
    host: str = "127.0.0.1"
    port: int = 0
    # The person who signs in at /authorize; mint() uses their `sub` too.
    user: dict[str, Any] = field(default_factory=lambda: {
        "sub": "idp-user-1", "email": "ada@example.com", "preferred_username": "ada", "name": "Ada Lovelace"})
    id_token_alg: str = "RS256"
    deny: str | None = None  # /authorize answers `error=<deny>` instead of a code
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides in the next ID tokens
    break_pkce: bool = False  # remember a wrong code challenge, so the right verifier fails
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate("RS256"),
                                                            SigningKey.generate("ES256")])
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_refusals: list[str] = field(default_factory=list)  # why /token said no, in order
    tokens_issued: int = 0
    _codes: dict[str, Authorization] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    # -- addresses ------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + self.base_path

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    # -- keys and tokens --------------------------------------------------------
    def key(self, alg: str = "RS256") -> SigningKey:
        """The current published key of `alg`."""
        return next(key for key in reversed(self.keys) if key.alg == alg)

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """Publish a new key of `alg` in place of the current one (tokens of the old key stop verifying)."""
        fresh = SigningKey.generate(alg)
        self.keys = [key for key in self.keys if key.alg != alg] + [fresh]
        return fresh

    def claims(self, lifetime_s: int = 300, **overrides: Any) -> dict[str, Any]:
        """Claims of a token for `user` from this issuer; an override of None drops that claim."""
        now = int(time.time())
        base = {"iss": self.issuer, "sub": self.user["sub"], "iat": now, "exp": now + lifetime_s,
                **{k: v for k, v in self.user.items() if k != "sub"}}
        merged = {**base, **overrides}
        return {k: v for k, v in merged.items() if v is not None}

    def mint(self, *, alg: str = "RS256", key: SigningKey | None = None, headers: dict[str, Any] | None = None,
             lifetime_s: int = 300, **claims: Any) -> str:
        """An access token: `user`'s claims plus `claims`, signed by `key` (default: the current key of `alg`)."""
        return (key or self.key(alg)).sign(self.claims(lifetime_s, **claims), headers)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Listen (in the provider's own thread); returns once it accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="fake-idp", daemon=True)
        self._thread.start()
        await asyncio.to_thread(ready.wait, 30)
        if failure:
            raise failure[0]

    async def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 30)
            self._loop = self._thread = None

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            runner = loop.run_until_complete(self._listen())
        except BaseException as exc:  # handed to start()
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get(f"{self.base_path}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{self.base_path}/.well-known/jwks.json", self._jwks)
        app.router.add_get(f"{self.base_path}/authorize", self._authorize)
        app.router.add_post(f"{self.base_path}/token", self._token)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        return runner

    async def __aenter__(self) -> FakeIdentityProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- handlers ---------------------------------------------------------------
    async def _discovery(self, _: web.Request) -> web.Response:
        self.discovery_fetches += 1
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })

    async def _jwks(self, _: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [key.public_jwk() for key in self.keys]})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri or query.get("response_type") != "code":
            return web.Response(status=400, text="unknown client, no redirect_uri, or not response_type=code")
        back: dict[str, str] = {"state": query["state"]} if "state" in query else {}
        if self.deny:
            back.update(error=self.deny, error_description="The user denied the request")
        else:
            code = secrets.token_urlsafe(16)
            challenge = query.get("code_challenge", "")
            self._codes[code] = Authorization(
                client_id=self.client_id, redirect_uri=redirect_uri,
                code_challenge=_b64(b"broken" * 6) if self.break_pkce else challenge,
                code_challenge_method=query.get("code_challenge_method", "plain"), nonce=query.get("nonce"),
                claims=dict(self.user))
            back["code"] = code
        raise web.HTTPFound(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(back)}")

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        refusal = self._client_refusal(request, form)
        if refusal is not None:
            return self._refuse(401, "invalid_client", refusal)
        if form.get("grant_type") != "authorization_code":
            return self._refuse(400, "unsupported_grant_type", "only authorization_code")
        grant = self._codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None:
            return self._refuse(400, "invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._refuse(400, "invalid_grant", "redirect_uri differs from the authorization request")
        verifier = str(form.get("code_verifier", ""))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if grant.code_challenge_method != "S256" or challenge != grant.code_challenge:
            return self._refuse(400, "invalid_grant", "PKCE verification failed")
        self.tokens_issued += 1
        id_claims = self.claims(**{**grant.claims, "aud": self.client_id, "nonce": grant.nonce,
                                   **self.id_token_claims})
        return web.json_response({
            "access_token": self.mint(aud=self.client_id), "token_type": "Bearer", "expires_in": 300,
            "id_token": self.key(self.id_token_alg).sign(id_claims),
        })

    def _client_refusal(self, request: web.Request, form: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization")
        if header:
            try:
                basic = BasicAuth.decode(header)
            except ValueError:
                return "malformed Basic authorization"
            client_id, secret = basic.login, basic.password
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id != self.client_id or not secrets.compare_digest(str(secret or ""), self.client_secret):
            return "wrong client id or secret"
        return None

    def _refuse(self, status: int, error: str, description: str) -> web.Response:
        self.token_refusals.append(f"{error}: {description}")
        return web.json_response({"error": error, "error_description": description}, status=status)
