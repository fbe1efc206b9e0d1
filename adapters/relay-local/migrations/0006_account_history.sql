-- Part 11 identity controls (issue 18): the hashes of an account's previous passwords (a JSON
-- array of PHC strings, newest first; a new password matching one of them is refused) and the
-- time of its last successful login (shown in the account list for the access review).
ALTER TABLE accounts ADD COLUMN password_history TEXT NOT NULL DEFAULT '[]';
ALTER TABLE accounts ADD COLUMN last_login_at TEXT;
