-- Sessions that end when they should: a password reset or a disable bumps the user's session
-- version, and a JWT issued under an older version is refused from then on.
ALTER TABLE users ADD COLUMN session_version integer NOT NULL DEFAULT 0;
