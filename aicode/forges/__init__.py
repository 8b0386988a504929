"""The forge round trip: pushing task branches, opening pull requests on GitHub and GitLab, and tasks
started from forge comments."""
