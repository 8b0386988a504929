"""Who may see or do what: workspace roles and the one rule every entry point asks."""
