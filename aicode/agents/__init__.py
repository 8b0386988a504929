"""Agent drivers: one per agent CLI, turning a turn's argv and environment in and normalized events out."""
