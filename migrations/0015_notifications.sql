-- Notification webhooks: a user's (tasks they started or ran a turn of) or a workspace's (all its tasks),
-- called when a task succeeds, fails or a live session waits for its next prompt.
CREATE TABLE notification_hooks (
    id              uuid PRIMARY KEY,
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    workspace_id    uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    -- The URL often is the secret (Slack's hooks.slack.com/services/T…/B…/…): encrypted like credentials,
    -- listed only as url_shown (scheme and host).
    url_enc         bytea NOT NULL,
    url_shown       text NOT NULL,
    format          text NOT NULL CHECK (format IN ('slack', 'json')),
    events          text[] NOT NULL CHECK (events <@ ARRAY['succeeded', 'failed', 'waiting']::text[]),
    enabled         boolean NOT NULL DEFAULT true,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The last attempt to reach it (a delivery or a test): the receiver's status, or why there was none.
    last_status     integer,
    last_error      text,
    last_attempt_at timestamptz,
    CONSTRAINT notification_hooks_one_owner CHECK ((user_id IS NULL) <> (workspace_id IS NULL))
);
CREATE INDEX notification_hooks_user ON notification_hooks (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX notification_hooks_workspace ON notification_hooks (workspace_id) WHERE workspace_id IS NOT NULL;

-- The retry queue: one row per (hook, event), its body rendered when the event happened; nodes claim due
-- rows with FOR UPDATE SKIP LOCKED, so each is sent by one node at a time.
CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    hook_id         uuid NOT NULL REFERENCES notification_hooks (id) ON DELETE CASCADE,
    task_id         uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    event           text NOT NULL,
    body            jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    abandoned_at    timestamptz,  -- given up after the last attempt
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
CREATE INDEX notification_deliveries_hook ON notification_deliveries (hook_id);
