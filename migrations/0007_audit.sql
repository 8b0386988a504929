-- The audit trail: who did what, when, from which address. Rows outlive the people and things
-- they name (no foreign keys): an audit trail that loses entries when a user is deleted is none.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text,
    target_id   text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    address     text
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (lower(actor), at DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, at DESC);
