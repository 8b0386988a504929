"""Review comments on a task's diff, sent to its agent as one follow-up."""
