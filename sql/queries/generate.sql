-- The generation pipeline (src/pipeline/generate.c): load what is persisted of an article, store each stage's
-- output, complete or fail it, and the sweep of articles whose job ended without them. Every write of a
-- stage applies only while the article is still generating (article_is_generating, 0010_sql_functions.sql),
-- so a user's DELETE or an outside completion wins over a late stage; RETURNING id tells the machine which.

-- name: gen_load
SELECT a.status, a.raw_query, a.topic, a.title, a.category, a.language, a.target_length,
       a.source_count,
       a.last_stage_done, a.research_results::text AS research, a.brief::text AS brief,
       a.meta_description, a.slug, a.write_draft, a.write_calls,
       (SELECT coalesce(json_agg(json_build_object('url', s.url, 'title', s.title, 'content', s.content)
                                 ORDER BY s.position), '[]') FROM article_sources s
         WHERE s.article_id = a.id)::text AS sources
  FROM articles a WHERE a.id = $1;

-- name: gen_status
UPDATE articles SET status = $2, progress_detail = $3 WHERE id = $1 AND article_is_generating(status)
 RETURNING id;

-- name: gen_research_done
UPDATE articles SET research_results = $2::jsonb, last_stage_done = 'research', status = 'scraping',
       progress_detail = $3 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_sources_clear
DELETE FROM article_sources WHERE article_id = $1;

-- name: gen_sources_insert
-- $2 the sources as a JSON array (url, title, snippet, content), kept in that order; $3 their origin.
INSERT INTO article_sources (article_id, position, url, title, source_origin, snippet, content)
 SELECT $1, e.ord, e.val->>'url', e.val->>'title', $3, e.val->>'snippet', e.val->>'content'
   FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(val, ord);

-- name: gen_scrape_done
UPDATE articles SET last_stage_done = 'scrape', status = 'analyzing', progress_detail = $2
 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_brief_done
UPDATE articles SET brief = $2::jsonb, meta_description = $3, slug = $4,
       prompt_tokens = prompt_tokens + $5, completion_tokens = completion_tokens + $6,
       tokens_used = tokens_used + $5 + $6, last_stage_done = 'analyze', status = 'writing',
       progress_detail = $7, write_draft = NULL, write_calls = 0
 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_draft
UPDATE articles SET write_draft = $2, write_calls = $3, prompt_tokens = prompt_tokens + $4,
       completion_tokens = completion_tokens + $5, tokens_used = tokens_used + $4 + $5,
       status = 'writing', progress_detail = $6
 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_complete
-- topic is what the user gave and stays; title is the article's H1: the one it was created with (already
-- stored, and made the content's H1), else the one the model wrote ($5).
UPDATE articles SET content = $2, content_html = $3, word_count = $4, title = coalesce(title, $5),
       prompt_tokens = prompt_tokens + $6, completion_tokens = completion_tokens + $7,
       tokens_used = tokens_used + $6 + $7, status = 'completed', completed_at = now(),
       last_stage_done = 'write', write_draft = NULL, progress_detail = NULL, error_message = NULL,
       next_delivery_at = CASE WHEN webhook_integration_id IS NOT NULL THEN coalesce(scheduled_at, now()) END
 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_ledger_tokens
-- The ledger row of the charge learns what the generation consumed.
UPDATE credit_transactions t SET tokens_consumed = a.tokens_used FROM articles a
 WHERE a.id = $1 AND t.id = a.charge_txn_id;

-- name: gen_enqueue_delivery
-- Delivery is a job due at scheduled_at (or now): the runner's timer starts it to the second.
INSERT INTO jobs (kind, article_id, run_at)
 SELECT 'deliver_webhook', a.id, coalesce(a.scheduled_at, now()) FROM articles a
  WHERE a.id = $1 AND a.status = 'completed' AND a.webhook_integration_id IS NOT NULL
 ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING;

-- name: gen_fail
-- $2 the error, $3-$4 the tokens the failed attempt consumed. The current charge is refunded (idempotent).
UPDATE articles SET status = 'failed', error_message = $2, progress_detail = NULL,
       prompt_tokens = prompt_tokens + $3, completion_tokens = completion_tokens + $4,
       tokens_used = tokens_used + $3 + $4,
       credits_charged = credits_charged - credits_refund(charge_txn_id, 'Refund: article generation failed')
 WHERE id = $1 AND article_is_generating(status) RETURNING id;

-- name: gen_job_failed
UPDATE jobs SET state = 'failed', finished_at = now(), lease_until = NULL, last_error = $3
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running';

-- name: gen_sweep
-- Articles still "generating" whose generation job ended (failed after losing its process too often, or
-- cancelled) would wait forever: they fail with the job's error and get their credit back. The condition on
-- status is the predicate of articles_generating_idx, so the sweep reads only those articles.
UPDATE articles a SET status = 'failed', progress_detail = NULL,
       error_message = coalesce((SELECT j.last_error FROM jobs j WHERE j.article_id = a.id
                                   AND j.kind = 'generate_article' ORDER BY j.id DESC LIMIT 1),
                                'Generation stopped'),
       credits_charged = a.credits_charged - credits_refund(a.charge_txn_id, 'Refund: article generation failed')
 WHERE article_is_generating(a.status) AND a.updated_at < now() - interval '1 minute'
   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.article_id = a.id AND j.kind = 'generate_article'
                    AND j.state IN ('queued', 'running'))
 RETURNING a.id;

-- name: gen_purge_jobs
-- Finished jobs are kept a week for inspection, then purged in bounded batches (jobs_finished_idx), so the
-- queue table and the /metrics count over it stay small.
DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled')
                                AND finished_at < now() - interval '7 days' LIMIT 5000);
