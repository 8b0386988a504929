-- A task's state, stored centrally after every turn so that any node can continue the task:
-- the git objects each turn added to the history, and the agent's own state (its session files).
CREATE TABLE task_objects (
    task_id    uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    head       text NOT NULL,
    since      text NOT NULL,
    objects    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, head)
);

CREATE TABLE task_sessions (
    task_id    uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    archive    bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
