"""Nodes: the server processes that share one database and take turns from its queue."""
