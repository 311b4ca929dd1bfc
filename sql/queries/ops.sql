-- Operations (src/http/health.c, src/http/ops.c, src/http/timezones.c): the health check, the queue figures
-- of /metrics and /queue/stats, and the timezone names every process caches.

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

-- name: timezones_list
-- Sorted by the server in "C" order so bsearch with strcmp agrees with it whatever the database collation.
SELECT name FROM pg_timezone_names ORDER BY name COLLATE "C";
