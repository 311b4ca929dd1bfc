-- Webhook integrations (src/http/integrations.c). Every statement is scoped by user_id, so another user's
-- integration is indistinguishable from a missing one.

-- fragment: integ_cols
-- What every response shows of an integration; never webhook_secret or api_key.
id, name, webhook_url, platform_type, is_active, last_test_at, last_test_status, last_success_at,
consecutive_failures, created_at

-- name: integ_insert
-- The only statement that returns the secret: it is shown once, at creation.
INSERT INTO webhook_integrations (user_id, name, webhook_url, webhook_secret, platform_type, api_key)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {{integ_cols}}, webhook_secret;

-- name: integ_list
SELECT {{integ_cols}}
  FROM webhook_integrations
 WHERE user_id = $1
 ORDER BY created_at DESC, id DESC
OFFSET $2 LIMIT $3;

-- name: integ_get
SELECT {{integ_cols}} FROM webhook_integrations WHERE id = $1 AND user_id = $2;

-- name: integ_secret
SELECT webhook_secret FROM webhook_integrations WHERE id = $1 AND user_id = $2;

-- name: integ_update
-- NULL parameters keep the stored value. Re-enabling an integration clears why it was disabled (a 410).
UPDATE webhook_integrations
   SET name = coalesce($3, name), webhook_url = coalesce($4, webhook_url),
       webhook_secret = coalesce($5, webhook_secret), platform_type = coalesce($6, platform_type),
       api_key = coalesce($7, api_key), is_active = coalesce($8::bool, is_active),
       disabled_reason = CASE WHEN $8::bool THEN NULL ELSE disabled_reason END
 WHERE id = $1 AND user_id = $2
RETURNING {{integ_cols}};

-- name: integ_delete
-- Campaigns and articles pointing at it keep existing without an integration (ON DELETE SET NULL).
DELETE FROM webhook_integrations WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: wh_integration
-- The test endpoints (src/http/webhooks.c) sign with the integration's own secret.
SELECT id, webhook_url, webhook_secret, api_key FROM webhook_integrations WHERE id = $1 AND user_id = $2;

-- name: wh_tested
UPDATE webhook_integrations
   SET last_test_at = now(), last_test_status = $2,
       last_success_at = CASE WHEN $2 = 'success' THEN now() ELSE last_success_at END
 WHERE id = $1;
