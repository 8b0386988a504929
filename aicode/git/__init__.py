"""The pygit2 adapter. Every function here blocks: callers run them in a worker thread."""
