-- The job queue (src/jobs): the statements other modules put in their own batches, so a job commits (or not)
-- with the rows it is about, and the runner's housekeeping. With the functions of sql/0011_jobs_api.sql they
-- are the only writes to the jobs table outside the runner's own claim, renewal and finish statements
-- (src/jobs/queue.c). Kinds are parameters (JOBS_KIND_* in src/jobs/queue.h).

-- name: jobs_enqueue_many
-- One job of kind $1 for each article of $2 (uuid[]), due now. An article that already has an active job of
-- that kind keeps it (jobs_active_per_article_key): a duplicate is a no-op. The hot path (POST /articles puts
-- it after the article's insert): one INSERT, no function call.
INSERT INTO jobs (kind, article_id) SELECT $1, unnest($2::uuid[])
    ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING;

-- name: jobs_mark_done
-- A handler that finishes its job inside its own transaction (then calls jobs_forget). $1 job id, $2 runner
-- id (jobs_runner_id). Returns the id while the job was still ours; no row means the lease was lost.
UPDATE jobs SET state = 'done', finished_at = now(), lease_until = NULL, last_error = NULL
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING id;

-- name: jobs_mark_failed
-- The same for a job that failed for good, whatever the attempts left: $3 is its last_error.
UPDATE jobs SET state = 'failed', finished_at = now(), lease_until = NULL, last_error = $3
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running';

-- name: jobs_purge_finished
-- The runner's housekeeping: finished jobs are kept a week for inspection, then purged in bounded batches
-- (jobs_finished_idx), so the queue table and the /metrics count over it stay small. SKIP LOCKED lets the
-- sweeps of several processes pass each other. A full batch ($1 rows) is followed by another at once.
DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled')
                                 AND finished_at < now() - interval '7 days'
                               LIMIT $1::int FOR UPDATE SKIP LOCKED);
