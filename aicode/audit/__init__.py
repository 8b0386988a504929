"""The audit trail: sign-ins, tokens, users, memberships, workspaces, credentials and tasks."""
