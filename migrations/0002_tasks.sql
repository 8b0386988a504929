-- Tasks, their turns and events, and the model credentials agents run with.

CREATE TABLE agent_credentials (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   text NOT NULL,
    kind       text NOT NULL,
    -- Fernet-encrypted; decrypted only to hand to an agent process at exec time.
    secret_enc bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, provider),
    CONSTRAINT agent_credentials_kind_check CHECK (kind IN ('api_key', 'oauth_token'))
);

CREATE TABLE tasks (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent              text NOT NULL DEFAULT 'claude',
    prompt             text NOT NULL,
    model              text,
    max_turns          integer,
    timeout_s          integer NOT NULL,
    base_branch        text NOT NULL,
    branch             text NOT NULL,
    base_commit        text,
    head_commit        text,
    session_id         text,
    status             text NOT NULL DEFAULT 'queued',
    error              text,
    -- The prompt of the turn waiting to run (the first prompt, or a follow-up).
    pending_prompt     text,
    turns              integer NOT NULL DEFAULT 0,
    cost_usd           double precision NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    -- The seq of the task's latest event: the next event takes last_seq + 1, so seqs have no gaps.
    last_seq           bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    CONSTRAINT tasks_max_turns_check CHECK (max_turns IS NULL OR max_turns > 0),
    CONSTRAINT tasks_timeout_check CHECK (timeout_s > 0)
);
CREATE INDEX tasks_workspace_created_idx ON tasks (workspace_id, created_at DESC);
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC);
CREATE INDEX tasks_active_idx ON tasks (status, created_at) WHERE status IN ('queued', 'running');

CREATE TABLE task_events (
    task_id uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     bigint NOT NULL,
    ts      timestamptz NOT NULL DEFAULT now(),
    type    text NOT NULL,
    data    jsonb NOT NULL,
    PRIMARY KEY (task_id, seq)
);
