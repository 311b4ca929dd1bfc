-- Articles (src/http/articles.c): create, list, stats, get, patch, delete, retry, deliver, deliveries, a
-- campaign's articles and POST /internal/article-complete. Every change is one atomic batch whose statements
-- refuse with an application SQLSTATE (inkloop_raise in 0004_articles.sql, IL402 from the credit functions),
-- so the checks and the writes see the same rows and a refusal rolls everything back. "Still generating" is
-- article_is_generating(status) (0010_sql_functions.sql); timestamps from a request are inkloop_ts(text,
-- has_offset, timezone) of a kit_ts_t.

-- fragment: article_select_list
-- Every Article field of "articles a" (timestamps in UTC, sources and brief as JSON text), what
-- articles_write_json renders.
a.id, a.topic, a.title, a.raw_query, a.status, a.scheduled_at AT TIME ZONE 'UTC' AS scheduled_at,
a.timezone,
a.created_at AT TIME ZONE 'UTC' AS created_at, a.updated_at AT TIME ZONE 'UTC' AS updated_at,
a.completed_at AT TIME ZONE 'UTC' AS completed_at, a.posted_at AT TIME ZONE 'UTC' AS posted_at,
a.category, a.target_length, a.source_count, a.language, a.content, a.content_html, a.word_count,
a.meta_description, a.slug,
(SELECT coalesce(json_agg(json_build_object('id', s.id, 'url', s.url, 'title', s.title,
                                            'source_origin', s.source_origin) ORDER BY s.position),
                 '[]'::json)
   FROM article_sources s WHERE s.article_id = a.id)::text AS sources,
CASE WHEN a.brief IS NULL THEN NULL
     ELSE json_build_object('keywords', coalesce(a.brief -> 'keywords', '[]'::jsonb),
                            'outline', coalesce(a.brief -> 'outline', '[]'::jsonb),
                            'strategy', a.brief -> 'strategy')::text END AS brief,
a.campaign_id, a.webhook_integration_id, a.is_recurring, a.tokens_used, a.prompt_tokens,
a.completion_tokens, a.error_message, a.retry_count, a.posting_attempt_count, a.last_posting_error,
a.published_url

-- name: article_get
SELECT {{article_select_list}}
  FROM articles a WHERE a.id = $1 AND a.user_id = $2;

-- name: article_list
-- $2 status or NULL, $3 campaign or NULL, $4 skip, $5 limit.
SELECT {{article_select_list}}
  FROM articles a
 WHERE a.user_id = $1 AND ($2::text IS NULL OR a.status = $2::text)
   AND ($3::uuid IS NULL OR a.campaign_id = $3::uuid)
 ORDER BY a.created_at DESC, a.id DESC OFFSET $4 LIMIT $5;

-- name: article_stats
-- completed counts every completed article; scheduled is the subset whose scheduled_at is still ahead
-- (contract: "scheduled = completed with scheduled_at in the future"), so scheduled <= completed and the
-- per-status figures (queued, in_progress, completed, posted, failed) never count an article twice.
-- in_progress: generating, past the queue.
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status <> 'queued' AND article_is_generating(status)) AS in_progress,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'completed' AND scheduled_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'posted') AS posted,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM articles WHERE user_id = $1;

-- name: integration_require
-- Refuses (404) an integration that is not the caller's, inside the batch that then uses it. $1 user,
-- $2 integration.
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM webhook_integrations WHERE id = $2 AND user_id = $1)
            THEN inkloop_raise('IL404', 'Integration not found') END AS ok;

-- name: article_insert
-- One article charged for its first attempt. $1 id, $2 user, $3 query (topic and raw_query), $4 category,
-- $5 target_length, $6 source_count, $7-$8 scheduled_at (kit_ts_t: text, has_offset), $9 timezone,
-- $10 integration, $11 language, $12 credits per article (0: not charged).
INSERT INTO articles (id, user_id, topic, raw_query, category, target_length, source_count,
                      scheduled_at, timezone, webhook_integration_id, language, charge_seq, charge_txn_id,
                      credits_charged)
VALUES ($1, $2, $3, $3, $4, $5::int, $6::int, inkloop_ts($7, $8, $9), $9, $10::uuid, $11,
        CASE WHEN $12::int > 0 THEN 1 ELSE 0 END,
        CASE WHEN $12::int > 0 THEN credits_charge($2, $12::int, $1, 1, 'Article generation') END,
        $12::int);

-- name: article_enqueue_generate
-- At most one active generation per article (jobs_active_per_article_key): a duplicate is a no-op.
INSERT INTO jobs (kind, article_id) SELECT 'generate_article', unnest($1::uuid[])
 ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING;

-- name: article_patch
-- PATCH: null/absent fields keep their value. $3 content, $4 topic, $5 category, $6-$7 scheduled_at (read
-- in the article's own timezone when it has no offset), $8 integration, $9-$10 the content's HTML and word
-- count, $11 its H1. New content brings its H1 as the title, except while the article is generating (the
-- pipeline's completion replaces the content, and a title stored then would be taken for the one the article
-- was created with). A new integration gets a new webhook-id (Standard Webhooks ids are per article and
-- integration; the deliverer mints one when it is NULL). A completed, undelivered article whose schedule or
-- integration changes is (re)scheduled for delivery.
UPDATE articles
   SET content = coalesce($3, content), topic = coalesce($4, topic),
       title = CASE WHEN $3::text IS NOT NULL AND NOT article_is_generating(status) THEN coalesce($11, title)
                    ELSE title END,
       content_html = CASE WHEN $3::text IS NULL THEN content_html ELSE $9 END,
       word_count = CASE WHEN $3::text IS NULL THEN word_count ELSE $10::int END,
       category = coalesce($5, category),
       scheduled_at = CASE WHEN $6::text IS NULL THEN scheduled_at
                           ELSE inkloop_ts($6, $7, articles.timezone) END,
       webhook_integration_id = coalesce($8::uuid, webhook_integration_id),
       webhook_id = CASE WHEN $8::uuid IS DISTINCT FROM webhook_integration_id AND $8::uuid IS NOT NULL
                         THEN NULL ELSE webhook_id END,
       next_delivery_at = CASE WHEN status = 'completed'
                                    AND coalesce($8::uuid, webhook_integration_id) IS NOT NULL
                                    AND ($6::text IS NOT NULL
                                         OR ($8::uuid IS NOT NULL AND next_delivery_at IS NULL))
                               THEN coalesce(CASE WHEN $6::text IS NULL THEN scheduled_at
                                                  ELSE inkloop_ts($6, $7, articles.timezone) END,
                                             now())
                               ELSE next_delivery_at END
 WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: article_patch_delivery
-- After a PATCH that moved the delivery time ($3), the queued delivery job follows it; the deliverer
-- (src/webhook/deliver.c) runs it at run_at.
INSERT INTO jobs (kind, article_id, run_at)
 SELECT 'deliver_webhook', id, next_delivery_at FROM articles
  WHERE id = $1 AND user_id = $2 AND $3::bool AND status = 'completed'
    AND webhook_integration_id IS NOT NULL AND next_delivery_at IS NOT NULL
 ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running')
 DO UPDATE SET run_at = EXCLUDED.run_at WHERE jobs.state = 'queued';

-- name: article_refund_generating
-- DELETE of an article still generating: refund its current charge first (credits_refund is idempotent, and
-- the row lock orders this against the pipeline finishing at the same moment).
WITH a AS (SELECT id, charge_txn_id FROM articles
            WHERE id = $1 AND user_id = $2 AND article_is_generating(status) FOR UPDATE)
SELECT credits_refund(a.charge_txn_id, 'Article cancelled') AS refunded FROM a;

-- name: article_cancel_jobs
UPDATE jobs SET state = 'cancelled', finished_at = now(), last_error = 'article deleted'
 WHERE article_id = $1 AND kind = 'generate_article' AND state IN ('queued', 'running')
   AND EXISTS (SELECT 1 FROM articles WHERE id = $1 AND user_id = $2);

-- name: article_delete
DELETE FROM articles WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: article_retry_check
SELECT CASE WHEN a.id IS NULL THEN inkloop_raise('IL404', 'Article not found')
            WHEN a.status <> 'failed' THEN inkloop_raise('IL400', 'Can only retry failed articles')
            WHEN a.retry_count >= 3 THEN inkloop_raise('IL400', 'Maximum retry limit reached') END AS ok
  FROM (SELECT 1) one LEFT JOIN LATERAL
       (SELECT id, status, retry_count FROM articles WHERE id = $1 AND user_id = $2 FOR UPDATE) a ON true;

-- name: article_retry
-- A retry charges a new attempt (charge_seq + 1; $3 credits, 0: not charged) and keeps last_stage_done, so
-- the pipeline resumes after the last stage whose output is stored.
UPDATE articles
   SET status = 'queued', error_message = NULL, progress_detail = NULL,
       retry_count = retry_count + 1,
       charge_seq = charge_seq + CASE WHEN $3::int > 0 THEN 1 ELSE 0 END,
       charge_txn_id = CASE WHEN $3::int > 0
                            THEN credits_charge(user_id, $3::int, id, charge_seq + 1, 'Article generation retry')
                       END,
       credits_charged = credits_charged + $3::int
 WHERE id = $1 AND user_id = $2 AND status = 'failed';

-- name: article_deliver_check
SELECT CASE WHEN a.id IS NULL THEN inkloop_raise('IL404', 'Article not found')
            WHEN a.no_content OR a.status NOT IN ('completed', 'posted', 'delivery_failed')
            THEN inkloop_raise('IL400', 'Article has not been generated yet')
            WHEN a.webhook_integration_id IS NULL
            THEN inkloop_raise('IL400', 'Article has no webhook integration') END AS ok
  FROM (SELECT 1) one LEFT JOIN LATERAL
       (SELECT id, status, content IS NULL AS no_content, webhook_integration_id FROM articles
         WHERE id = $1 AND user_id = $2 FOR UPDATE) a ON true;

-- name: article_deliver
UPDATE articles SET posting_attempt_count = 0, last_posting_error = NULL, next_delivery_at = now(),
  status = CASE WHEN status IN ('posted', 'delivery_failed') THEN 'completed' ELSE status END
 WHERE id = $1 AND user_id = $2;

-- name: article_enqueue_delivery
-- "Deliver now": a queued delivery job is pulled forward rather than duplicated; the deliverer
-- (src/webhook/deliver.c) runs it.
INSERT INTO jobs (kind, article_id) VALUES ('deliver_webhook', $1)
 ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running')
 DO UPDATE SET run_at = least(jobs.run_at, EXCLUDED.run_at);

-- name: article_exists
SELECT EXISTS (SELECT 1 FROM articles WHERE id = $1 AND user_id = $2) AS found;

-- name: article_deliveries
-- $3 skip, $4 limit.
SELECT d.id, d.attempt, d.integration_id, d.url, d.status_code, d.error, d.duration_ms,
       d.created_at AT TIME ZONE 'UTC' AS created_at
  FROM webhook_deliveries d JOIN articles a ON a.id = d.article_id
 WHERE d.article_id = $1 AND a.user_id = $2 ORDER BY d.created_at DESC, d.id DESC OFFSET $3 LIMIT $4;

-- name: campaign_exists
SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1 AND user_id = $2) AS found;

-- name: campaign_articles
-- $1 campaign, $2 user, $3 skip, $4 limit.
SELECT {{article_select_list}}
  FROM articles a WHERE a.campaign_id = $1 AND a.user_id = $2
 ORDER BY a.created_at DESC, a.id DESC OFFSET $3 LIMIT $4;

-- name: article_complete
-- POST /internal/article-complete: work done outside the process reports its result. $1 id, $2 tokens_used,
-- $3 status ('completed', 'failed', another status or NULL), $4 content or NULL, $5 error_message or NULL,
-- $6-$7 the content's HTML and word count, $8 its H1.
--
-- The status change applies only to an article still generating (o.generating); the UPDATE matches only when
-- something would change, so repeating a call changes nothing (not even updated_at). failed refunds the
-- current charge (idempotent); completed schedules delivery when the article has an integration. Either
-- cancels the in-process generation job, since the work was done outside. New content brings its H1 as the
-- title, as for PATCH: not while the article stays generating. Completing an article that has no content is
-- refused (400): it would have nothing to deliver.
WITH o AS (
  -- The article as it was, locked for the rest of the statement.
  SELECT id, status, content, article_is_generating(status) AS generating
    FROM articles WHERE id = $1 FOR UPDATE
),
chk AS (
  SELECT CASE WHEN $3::text = 'completed' AND o.generating AND $4::text IS NULL AND o.content IS NULL
              THEN inkloop_raise('IL400', 'Cannot complete an article without content') END AS ok
    FROM o
),
u AS (
  UPDATE articles a
     SET tokens_used = $2::int,
         content = coalesce($4::text, a.content),
         content_html = CASE WHEN $4::text IS NULL THEN a.content_html ELSE $6 END,
         word_count = CASE WHEN $4::text IS NULL THEN a.word_count ELSE $7::int END,
         -- the status after this call (the same expression as status below) must not be generating
         title = CASE WHEN $4::text IS NOT NULL
                           AND NOT article_is_generating(CASE WHEN $3::text IS NOT NULL AND o.generating
                                                              THEN $3::text ELSE a.status END)
                      THEN coalesce($8, a.title) ELSE a.title END,
         status = CASE WHEN $3::text IS NOT NULL AND o.generating THEN $3::text ELSE a.status END,
         progress_detail = CASE WHEN $3::text IS NOT NULL AND o.generating THEN NULL
                                ELSE a.progress_detail END,
         error_message = CASE WHEN o.generating AND $3::text = 'failed'
                              THEN coalesce($5::text, 'Generation failed')
                              WHEN o.generating AND $3::text = 'completed' THEN NULL
                              ELSE a.error_message END,
         completed_at = CASE WHEN o.generating AND $3::text = 'completed' THEN now() ELSE a.completed_at END,
         next_delivery_at = CASE WHEN o.generating AND $3::text = 'completed'
                                      AND a.webhook_integration_id IS NOT NULL
                                 THEN coalesce(a.scheduled_at, now())
                                 ELSE a.next_delivery_at END,
         credits_charged = CASE WHEN o.generating AND $3::text = 'failed'
                                THEN a.credits_charged
                                     - credits_refund(a.charge_txn_id, 'Article generation failed')
                                ELSE a.credits_charged END
    FROM o
   WHERE a.id = o.id
     AND (a.tokens_used <> $2::int
          OR ($4::text IS NOT NULL AND a.content IS DISTINCT FROM $4::text)
          OR ($3::text IS NOT NULL AND o.generating))
  RETURNING a.id, a.status, o.status AS old_status, a.next_delivery_at, a.webhook_integration_id
),
j AS (
  -- the in-process generation job, when the article stopped generating
  UPDATE jobs SET state = 'cancelled', finished_at = now(), last_error = 'completed outside the process'
   WHERE kind = 'generate_article' AND state IN ('queued', 'running')
     AND article_id IN (SELECT id FROM u WHERE article_is_generating(old_status)
                                           AND status IN ('completed', 'failed'))
  RETURNING id
),
d AS (
  -- its delivery, when it was completed now
  INSERT INTO jobs (kind, article_id, run_at)
  SELECT 'deliver_webhook', id, next_delivery_at FROM u
   WHERE article_is_generating(old_status) AND status = 'completed' AND webhook_integration_id IS NOT NULL
  ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING RETURNING id
)
SELECT (SELECT count(*) FROM o) AS found, (SELECT count(*) FROM u) AS changed,
       (SELECT count(*) FROM j) AS cancelled, (SELECT count(*) FROM d) AS deliveries,
       (SELECT count(*) FROM chk) AS checked;
