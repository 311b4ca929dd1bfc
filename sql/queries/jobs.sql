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

-- The runner's own statements (src/jobs/queue.c). Every change of a claimed row checks locked_by = this
-- runner, so a job rescued from it and claimed elsewhere is never finished by it.

-- name: jobs_claim
-- Claims due jobs of the kinds with room ($1 kinds, $2 room per kind), $3 in all, oldest run_at first, for
-- runner $4 with a lease of $5 ms and its liveness key $6 (NULL while its session does not hold the lock).
-- The per-kind LATERAL keeps each kind within its own limit; SKIP LOCKED lets several claimers pass each
-- other, and the locked row's state is checked again after the lock (READ COMMITTED re-evaluates the WHERE
-- clause), so a job claimed by another process meanwhile is never claimed twice.
WITH room AS (SELECT k.kind, k.n FROM unnest($1::text[], $2::int[]) AS k(kind, n)),
picked AS (SELECT c.id FROM room CROSS JOIN LATERAL (
             SELECT j.id, j.run_at FROM jobs j
              WHERE j.state = 'queued' AND j.run_at <= now() AND j.kind = room.kind
              ORDER BY j.run_at, j.id LIMIT room.n FOR UPDATE SKIP LOCKED) c
            ORDER BY c.run_at, c.id LIMIT $3::int)
UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $4, locked_at = now(),
       lease_until = now() + $5::bigint * interval '1 millisecond', owner_key = $6::int
 WHERE id IN (SELECT id FROM picked) AND state = 'queued'
RETURNING id, kind, article_id, payload::text AS payload, attempts, max_attempts;

-- name: jobs_next_due
-- In the claim's transaction: per kind of $1, how long until its earliest queued job is due (NULL: none
-- queued), so a delayed job starts on time without waiting for the poll. One ordered index probe per kind.
SELECT k.kind,
       ceil(extract(epoch FROM (SELECT j.run_at FROM jobs j WHERE j.state = 'queued' AND j.kind = k.kind
                                 ORDER BY j.run_at LIMIT 1) - now()) * 1000)::bigint AS due_ms
  FROM unnest($1::text[]) AS k(kind);

-- name: jobs_renew
-- The heartbeat: $1 the held jobs (bigint[]), $2 runner, $3 lease (ms), $4 our liveness key while our session
-- holds it (jobs claimed while it did not get it now), NULL: kept.
UPDATE jobs SET lease_until = now() + $3::bigint * interval '1 millisecond',
       owner_key = coalesce($4::int, owner_key)
 WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND state = 'running' RETURNING id;

-- name: jobs_rescue
-- Jobs whose holder is gone: its database session no longer holds the liveness lock stamped on the row
-- (owner_key: the process died, or lost its session), or its lease expired (a hung process, or one that never
-- got its lock). pg_locks shows the locks of every session, whoever the user; only sessions of this database
-- count, in the lock namespace $1, and not in the first $2 seconds after the server started (every live
-- process must first take its lock again). At most $3 rows; SKIP LOCKED so sweeps of several processes split
-- the work, and a row being finished right now by its holder is left to it.
WITH live AS (SELECT l.objid FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objsubid = 2
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())),
gone AS (SELECT id, locked_by,
                CASE WHEN lease_until < now() THEN 'lease expired' ELSE 'its process is gone' END AS why
           FROM jobs
          WHERE state = 'running'
            AND (lease_until < now()
                 OR (owner_key IS NOT NULL AND owner_key::oid NOT IN (SELECT objid FROM live)
                     AND now() - pg_postmaster_start_time() > make_interval(secs => $2::int)))
          ORDER BY lease_until LIMIT $3::int FOR UPDATE SKIP LOCKED)
UPDATE jobs j SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
       finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END, run_at = now(),
       locked_by = NULL, locked_at = NULL, lease_until = NULL, owner_key = NULL, last_error = g.why
  FROM gone g WHERE j.id = g.id
RETURNING j.id, j.kind, j.state, g.locked_by AS held_by, g.why;

-- name: jobs_hand_back
-- Shutdown: the jobs ($1 bigint[]) were claimed by runner $2 but their work stopped; the attempt does not
-- count.
UPDATE jobs SET state = 'queued', locked_by = NULL, locked_at = NULL, lease_until = NULL,
       attempts = greatest(attempts - 1, 0), run_at = now()
 WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND state = 'running' RETURNING id;

-- name: jobs_done
-- jobs_done(): $1 job id, $2 runner.
UPDATE jobs SET state = 'done', finished_at = now(), lease_until = NULL, last_error = NULL
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state;

-- name: jobs_fail
-- jobs_fail(): $3 retry delay (ms), $4 no retry, $5 error. Every CASE reads the row as it was before this
-- UPDATE.
UPDATE jobs
   SET state = CASE WHEN $4::boolean OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
       finished_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN now() END,
       run_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN run_at
                     ELSE now() + $3::bigint * interval '1 millisecond' END,
       locked_by = CASE WHEN $4::boolean OR attempts >= max_attempts THEN locked_by END,
       locked_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN locked_at END,
       lease_until = NULL, last_error = $5
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state;

-- name: jobs_cancel
-- jobs_cancel(): $3 the reason (may be NULL).
UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL, last_error = $3
 WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state;
