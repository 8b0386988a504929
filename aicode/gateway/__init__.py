"""The model gateway: capability tokens in, real credentials out, usage metered from each answer."""
