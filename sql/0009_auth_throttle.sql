-- Throttling of failed logins and signups (issue 9): one row per account ('account:' || lower(email)) and per
-- client address ('address:' || the address, IPv6 by /64), shared by every process.
--
-- A fixed window opens at the first attempt after the previous window ended and lasts LOGIN_FAILURE_WINDOW_S.
-- Every login or signup attempt counts before its password is checked (so concurrent attempts cannot overrun
-- the limit); one that succeeds deletes its account's row and gives its address back the attempt. An attempt
-- numbered past the limit within the window is answered 429 with Retry-After = the window's end, without
-- looking at the password or at whether the email exists. src/http/auth.c holds the statements.
CREATE TABLE auth_throttle (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 0)
);
-- Pruning rows whose window ended.
CREATE INDEX auth_throttle_window_idx ON auth_throttle (window_start);
