-- Operations (src/http/health.c, src/http/ops.c): the health check and the queue figures of /metrics and
-- /queue/stats.

-- name: health
-- Jobs due now, running, and waiting for a later run_at; the partial indexes on jobs keep this to the active
-- rows, so the cost does not grow with history.
SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS queued,
       count(*) FILTER (WHERE state = 'running') AS in_progress,
       count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS delayed
  FROM jobs WHERE state IN ('queued', 'running');

-- name: ops_jobs
-- Jobs by kind and state, read at scrape time. It scans the whole table, finished jobs included, which is
-- what a gauge of every state needs; the jobs module's retention (jobs_finished_idx) keeps that table small.
SELECT kind, state, count(*) AS n FROM jobs GROUP BY 1, 2;

-- name: ops_queue
-- Same definitions as /health (queued = due now, delayed = waiting for a later run_at), plus failed jobs.
SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS queued,
       count(*) FILTER (WHERE state = 'running') AS in_progress,
       count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS delayed,
       count(*) FILTER (WHERE state = 'failed') AS failed
  FROM jobs WHERE state IN ('queued', 'running', 'failed');
