-- The boundary between the server and the agent's container: who asked for each turn, the
-- capability tokens turns reach the model gateway with, what the gateway metered, and budgets.

-- The user who asked for the pending (or running) turn: the author of the latest follow-up, or
-- NULL for the task's creator (the first turn). The turn runs with this user's credential and
-- commits as this user.
ALTER TABLE tasks ADD COLUMN turn_user_id uuid REFERENCES users (id) ON DELETE CASCADE;

-- Spend caps: per task (set at submit), per user and per workspace per calendar month (admins).
ALTER TABLE tasks ADD COLUMN max_cost_usd double precision
    CONSTRAINT tasks_max_cost_check CHECK (max_cost_usd IS NULL OR max_cost_usd > 0);
ALTER TABLE users ADD COLUMN monthly_budget_usd double precision
    CONSTRAINT users_monthly_budget_check CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0);
ALTER TABLE workspaces ADD COLUMN monthly_budget_usd double precision
    CONSTRAINT workspaces_monthly_budget_check CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0);

-- Hosts the agent may reach over HTTPS through the gateway's CONNECT proxy (network `allowlist`).
ALTER TABLE workspaces ADD COLUMN egress_allow text[] NOT NULL DEFAULT '{}';

-- The default network policy is now `gateway`; NULL still means "the server's default".

-- One row per running turn: the sha256 of the random token its container holds instead of a
-- model credential. Deleted when the turn ends, so a token is valid only while its turn runs.
CREATE TABLE turn_grants (
    token_hash   bytea PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX turn_grants_task_idx ON turn_grants (task_id);

-- Every model call the gateway forwarded, with the usage read from its answer. Rows outlive
-- their task and workspace (SET NULL): a month's spend does not drop when a workspace is deleted.
CREATE TABLE model_usage (
    id                 bigserial PRIMARY KEY,
    task_id            uuid REFERENCES tasks (id) ON DELETE SET NULL,
    user_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    workspace_id       uuid REFERENCES workspaces (id) ON DELETE SET NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    cost_usd           double precision NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_usage_user_idx ON model_usage (user_id, created_at);
CREATE INDEX model_usage_workspace_idx ON model_usage (workspace_id, created_at);
CREATE INDEX model_usage_task_idx ON model_usage (task_id);
