"""Single sign-on: bearer tokens of an external identity provider (verified through its JWKS), and
browser sign-in through an OpenID Connect provider (authorization code flow with PKCE).

Both map a person to an aicode user by (issuer, `sub`) in `external_identities`, provisioning the
user on first use; see `config.build_single_sign_on` for how the parts fit together.
"""
