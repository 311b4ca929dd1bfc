-- Idempotency-Key (src/http/idempotency.c): the key is claimed inside the creating transaction, and a
-- duplicate replays the stored response.

-- name: idem_purge
-- A key older than 24 h no longer binds: removing it first lets the insert below claim it afresh.
DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND expires_at <= now();

-- name: idem_insert
-- No ON CONFLICT on purpose: a duplicate must wait for the first transaction and then fail (23505).
INSERT INTO idempotency_keys (user_id, key, endpoint, request_hash, resource_type, resource_ids)
VALUES ($1, $2, $3, $4::bytea, $5, $6::uuid[]);

-- name: idem_store
UPDATE idempotency_keys SET response_status = $3::int, response_body = $4, completed_at = now()
 WHERE user_id = $1 AND key = $2 AND response_body IS NULL;

-- name: idem_get
SELECT endpoint = $3 AND request_hash = $4::bytea AS same, resource_type, resource_ids::text AS resource_ids,
       response_status, response_body
  FROM idempotency_keys
 WHERE user_id = $1 AND key = $2 AND expires_at > now();
