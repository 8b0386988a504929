"""Tasks: a prompt run by an agent in a container, committed on its own branch."""
