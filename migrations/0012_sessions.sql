-- Live sessions: a task whose container and agent process stay alive between prompts. Prompts sent
-- while it runs wait here, in order, for the node that holds the session to hand them to the agent.
ALTER TABLE tasks ADD COLUMN kind text NOT NULL DEFAULT 'task';
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_check CHECK (kind IN ('task', 'session'));

CREATE TABLE session_prompts (
    id          bigserial PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_prompts_task ON session_prompts (task_id, id);
