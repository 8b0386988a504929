"""Notification webhooks: users' and workspaces' URLs called when a task succeeds, fails or waits for input."""
