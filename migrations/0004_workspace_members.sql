-- Workspaces shared by a team: members with a role, and a team credential for turns whose
-- requester has none of their own.

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- viewer: sees everything of the workspace; editor: also runs tasks; owner: also manages it.
    role         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'editor', 'viewer'))
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

-- Every workspace so far had one person: its creator, now its first owner.
INSERT INTO workspace_members (workspace_id, user_id, role) SELECT id, owner_id, 'owner' FROM workspaces;

CREATE TABLE workspace_credentials (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    provider     text NOT NULL,
    kind         text NOT NULL,
    -- Fernet-encrypted, like agent_credentials; it reaches only the model gateway, never a container.
    secret_enc   bytea NOT NULL,
    updated_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, provider),
    CONSTRAINT workspace_credentials_kind_check CHECK (kind IN ('api_key', 'oauth_token'))
);
