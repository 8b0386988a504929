"""Workspaces: a git repository plus the container settings its tasks run with."""
