-- Each user's git identity: the author of the commits of the turns they ask for (aicode stays committer).
ALTER TABLE users ADD COLUMN git_name text;
ALTER TABLE users ADD COLUMN git_email text;
