-- Several server processes ("nodes") share one database: the queue of turns lives here, and each
-- node holds a lease it renews by heartbeat. A node whose lease ran out is gone: another node
-- marks its running turns interrupted.
CREATE TABLE nodes (
    name         text PRIMARY KEY,
    version      text NOT NULL,
    capacity     integer NOT NULL,
    running      integer NOT NULL DEFAULT 0,
    draining     boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz NOT NULL,
    -- Which AICODE_SECRET_KEY the node runs with (a one-way fingerprint): every node must share one.
    secret_fingerprint text NOT NULL,
    -- One more each time a process starts under this name: a heartbeat from an older life fails.
    incarnation  bigint NOT NULL DEFAULT 1
);

-- The node that runs (or last ran) the task's turn, and when its pending turn joined the queue.
ALTER TABLE tasks ADD COLUMN node text;
ALTER TABLE tasks ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
UPDATE tasks SET queued_at = updated_at;
CREATE INDEX tasks_queue_idx ON tasks (queued_at, id) WHERE status = 'queued';
CREATE INDEX tasks_running_idx ON tasks (node) WHERE status = 'running';

-- When each requester last had a turn claimed: the one served longest ago goes first.
CREATE TABLE queue_served (
    user_id   uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    served_at timestamptz NOT NULL
);
