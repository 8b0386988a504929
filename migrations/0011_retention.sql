-- Retention: when an ended task's working copies and central state were removed (its row, events and
-- branch stay). A follow-up of such a task starts a new agent session on the same branch.
ALTER TABLE tasks ADD COLUMN state_collected_at timestamptz;
CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;
