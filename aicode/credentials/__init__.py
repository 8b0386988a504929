"""Model credentials of each user, encrypted at rest and handed to agents only at exec time."""
