-- People who sign in through an external identity provider (an OIDC issuer, or the issuer of bearer
-- tokens verified through a JWKS). A person is (issuer, subject): the `sub` claim is unique only
-- within its issuer, and email addresses or usernames are never used to link accounts, so an IdP
-- user can never take over a local account that happens to share a name.
CREATE TABLE external_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
