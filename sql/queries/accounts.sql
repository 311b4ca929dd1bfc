-- Accounts (src/accounts/accounts.c): users, sessions (refresh tokens with rotation), API keys and the
-- login/signup throttle. The tables and the flows they support are explained in sql/0001_init.sql and
-- sql/0009_auth_throttle.sql.

-- name: auth_key
-- The ROUTE_USER gate's lookup of an API key by its SHA-256 ($1); stale says last_used_at is due again.
SELECT id, user_id, (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds') AS stale
  FROM api_keys WHERE key_hash = $1::bytea AND revoked_at IS NULL;

-- name: auth_key_touch
UPDATE api_keys SET last_used_at = now() WHERE id = $1;

-- name: auth_exists
SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) OR lower(username) = lower($2)) AS taken;

-- name: auth_insert_user
INSERT INTO users (id, email, username, password_hash) VALUES ($1, $2, $3, $4);

-- name: auth_grant
-- The signup credits ($2) of a new user ($1), written to the ledger by credits_add.
SELECT credits_add($1, $2::int, 'grant', 'Signup credits');

-- name: auth_insert_refresh
INSERT INTO refresh_tokens (user_id, token_hash, expires_at)
 VALUES ($1, $2::bytea, now() + make_interval(secs => $3::int));

-- name: auth_user_by_id
SELECT id, email, username, credits, plan FROM users WHERE id = $1;

-- name: auth_user_by_email
SELECT id, email, username, credits, plan, password_hash FROM users WHERE lower(email) = lower($1);

-- name: auth_rotate
-- Rotation with a grace window (sql/0001_init.sql explains it): the presented token is marked rotated
-- (keeping the first rotation time and first successor) and a sibling in its family is issued. The new
-- token's id ($5) is chosen by the caller so one UPDATE can record it: a second CTE updating the same row
-- would be silently ignored by PostgreSQL (a row is modified at most once per statement).
WITH old AS (
  UPDATE refresh_tokens SET rotated_at = coalesce(rotated_at, now()),
                            replaced_by = coalesce(replaced_by, $5::uuid)
   WHERE token_hash = $1::bytea AND revoked_at IS NULL AND expires_at > now()
     AND (rotated_at IS NULL OR rotated_at > now() - make_interval(secs => $3::int))
  RETURNING id, user_id, family_id),
 new AS (
  INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
  SELECT $5::uuid, user_id, family_id, $2::bytea, now() + make_interval(secs => $4::int) FROM old
  RETURNING id, user_id)
 SELECT u.id, u.email, u.username, u.credits, u.plan FROM new JOIN users u ON u.id = new.user_id;

-- name: auth_revoke
-- Logout ends the session: the presented token and every rotation of it (its family), so a sibling minted by
-- a concurrent refresh cannot outlive the logout.
UPDATE refresh_tokens SET revoked_at = now()
 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1::bytea)
   AND revoked_at IS NULL;

-- name: apikey_insert
-- Inserts nothing for a user that no longer exists (a valid access token can outlive its user).
INSERT INTO api_keys (user_id, name, prefix, key_hash) SELECT id, $2, $3, $4::bytea
  FROM users WHERE id = $1
 RETURNING id, name, prefix, created_at;

-- name: apikey_list
SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys
 WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3;

-- name: apikey_revoke
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
RETURNING id;

-- name: auth_throttle_hit
-- Throttling (sql/0009_auth_throttle.sql): counts one attempt for the account ($1, an email) and the client
-- address ($2) and answers how many seconds until the window ends when either is past its limit ($4, $5),
-- else 0. The keys are upserted in key order so two attempts never wait on each other's rows crosswise.
WITH k(key, lim) AS (VALUES ('account:' || lower($1), $4::int), ('address:' || $2, $5::int)),
 up AS (
  INSERT INTO auth_throttle AS t (key, window_start, attempts)
  SELECT key, now(), 1 FROM k ORDER BY key
  ON CONFLICT (key) DO UPDATE SET
   window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $3::int) THEN now()
                       ELSE t.window_start END,
   attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $3::int) THEN 1
                   ELSE t.attempts + 1 END
  RETURNING t.key, t.attempts, t.window_start)
 SELECT coalesce(max(greatest(1, ceil(extract(epoch FROM up.window_start
                                            + make_interval(secs => $3::int) - now()))))
                 FILTER (WHERE up.attempts > k.lim), 0)::int AS retry_after
 FROM up JOIN k USING (key);

-- name: auth_throttle_clear
-- A success: the account starts afresh and the address gets its attempt back.
WITH a AS (DELETE FROM auth_throttle WHERE key = 'account:' || lower($1))
 UPDATE auth_throttle SET attempts = attempts - 1 WHERE key = 'address:' || $2 AND attempts > 0;

-- name: auth_throttle_prune
DELETE FROM auth_throttle WHERE window_start < now() - make_interval(secs => $1::int);

