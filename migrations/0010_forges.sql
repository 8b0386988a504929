-- The forge round trip: where a workspace's pull requests go, what a task pushed and opened there,
-- and the forge comments that start tasks.
ALTER TABLE workspaces
    ADD COLUMN forge            jsonb,          -- {kind, api_url, repo, trigger}; NULL: no forge
    ADD COLUMN forge_token_enc  bytea,          -- sealed; NULL: the repository token is used
    ADD COLUMN auto_pr          text NOT NULL DEFAULT 'off' CHECK (auto_pr IN ('off', 'draft', 'ready')),
    ADD COLUMN setup            text,           -- a shell command run before the agent's first turn
    ADD COLUMN setup_timeout_s  integer,
    ADD COLUMN webhook_secret_enc bytea;

ALTER TABLE tasks
    ADD COLUMN remote_branch  text,             -- where the task branch was pushed
    ADD COLUMN pushed_commit  text,             -- what the last push left there (the lease of the next one)
    ADD COLUMN pull_request   jsonb,            -- {url, number, state, draft}
    ADD COLUMN origin         jsonb;            -- the forge comment that started the task, when one did

CREATE TABLE forge_identities (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('github', 'gitlab')),
    login      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);
-- A forge login speaks for one aicode user at most.
CREATE UNIQUE INDEX forge_identities_login_key ON forge_identities (kind, lower(login));

-- Webhook deliveries already acted on: a delivery id is processed once.
CREATE TABLE forge_deliveries (
    kind         text NOT NULL,
    delivery_id  text NOT NULL,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, delivery_id)
);
CREATE INDEX forge_deliveries_received_at ON forge_deliveries (received_at);
