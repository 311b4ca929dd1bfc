-- Credits (src/http/credits.c): the balance, the ledger, admin grants. Every balance change goes through the
-- SQL functions of sql/0001_init.sql, which write the ledger row in the same transaction.

-- name: credits_get
SELECT credits, plan FROM users WHERE id = $1;

-- name: credits_ledger
SELECT id, amount, balance_after, type, reference_type, reference_id, description, tokens_consumed, created_at
  FROM credit_transactions
 WHERE user_id = $1
 ORDER BY created_at DESC, id DESC
OFFSET $2 LIMIT $3;

-- name: credits_admin_grant
-- Admin grant by id or email; a negative amount corrects a balance but never below zero (23514). The user is
-- found through the primary key or the lower(email) index, never by scanning users.
SELECT u.id, credits_add(u.id, $3::int, 'grant', $4) AS credits
  FROM users u
 WHERE u.id = coalesce($1::uuid, (SELECT id FROM users WHERE lower(email) = lower($2)));
