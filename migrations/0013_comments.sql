-- Review comments on a task's diff: written one by one, then sent together as one follow-up prompt.
CREATE TABLE task_comments (
    id          bigserial PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path        text NOT NULL,
    line        integer NOT NULL CHECK (line >= 1),
    side        text NOT NULL CHECK (side IN ('new', 'old')),
    body        text NOT NULL,
    quote       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX task_comments_task ON task_comments (task_id, id);
