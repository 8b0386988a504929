-- Accounts, API tokens, revoked JWTs and workspaces.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL,
    password_hash text NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
);
-- Usernames are unique regardless of case: "Alice" and "alice" are one person.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- sha256 of the token; the token itself is shown once and never stored.
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (user_id, name) WHERE revoked_at IS NULL;

-- JWTs ended by logout before they expire; rows can be dropped once expires_at has passed.
CREATE TABLE revoked_jwts (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_jwts_expires_at_idx ON revoked_jwts (expires_at);

CREATE TABLE workspaces (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             text NOT NULL,
    repo_url         text NOT NULL,
    -- Fernet-encrypted access token for https remotes; never returned by the API.
    repo_token_enc   bytea,
    default_branch   text,
    image            text,
    limits           jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- NULL: the server's AICODE_WORKSPACE_NETWORK.
    network          text,
    status           text NOT NULL DEFAULT 'cloning',
    error            text,
    last_synced_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspaces_status_check CHECK (status IN ('cloning', 'ready', 'error')),
    CONSTRAINT workspaces_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
);
CREATE UNIQUE INDEX workspaces_owner_name_key ON workspaces (owner_id, lower(name));
