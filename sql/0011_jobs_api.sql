-- 0011_jobs_api: the jobs module is the only writer of the jobs table (src/jobs/queue.h says how to use it).
--
-- Other modules never write jobs themselves. They put a statement of the jobs module in their batch
-- (sql/queries/jobs.sql: jobs_enqueue_many, jobs_mark_done, jobs_mark_failed), or call one of the functions
-- below from their own statements, so a conditional or derived enqueue ("a delivery for this article if it
-- is completed and has an integration") stays one statement and commits with the caller's rows. Kinds come
-- from the caller as parameters (JOBS_KIND_* in src/jobs/queue.h, their one definition on the C side).
--
-- Both functions are PL/pgSQL so their plans are cached per session, like the prepared statements they
-- replace; they are VOLATILE (they write), so a caller evaluating one per row of a SELECT sees every call.

-- Enqueues one job of p_kind for an article, due at p_run_at (NULL: now). At most one job of a kind per article
-- is active (jobs_active_per_article_key); when one is queued or running already, p_on_active says what
-- happens:
--   'keep'    nothing (the active job stands as it is);
--   'earlier' a queued job is pulled forward to p_run_at when that is earlier ("deliver now" racing with a
--             scheduled delivery);
--   'move'    a queued job moves to p_run_at, earlier or later (its article's delivery time changed).
-- A running job is never changed. p_payload (NULL: {}) and p_max_attempts (NULL: 5) are the new row's.
-- Returns the id of the job inserted or changed, NULL when nothing was written (a queued job already due at
-- that time is not rewritten).
CREATE FUNCTION jobs_enqueue(p_kind text, p_article_id uuid, p_run_at timestamptz DEFAULT NULL,
                             p_on_active text DEFAULT 'keep', p_payload jsonb DEFAULT NULL,
                             p_max_attempts integer DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_on_active = 'keep' THEN
        INSERT INTO jobs (kind, article_id, payload, run_at, max_attempts)
        VALUES (p_kind, p_article_id, coalesce(p_payload, '{}'), coalesce(p_run_at, now()),
                coalesce(p_max_attempts, 5))
        ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING
        RETURNING id INTO v_id;
    ELSIF p_on_active = 'earlier' THEN
        INSERT INTO jobs (kind, article_id, payload, run_at, max_attempts)
        VALUES (p_kind, p_article_id, coalesce(p_payload, '{}'), coalesce(p_run_at, now()),
                coalesce(p_max_attempts, 5))
        ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running')
        DO UPDATE SET run_at = EXCLUDED.run_at WHERE jobs.state = 'queued' AND EXCLUDED.run_at < jobs.run_at
        RETURNING id INTO v_id;
    ELSIF p_on_active = 'move' THEN
        INSERT INTO jobs (kind, article_id, payload, run_at, max_attempts)
        VALUES (p_kind, p_article_id, coalesce(p_payload, '{}'), coalesce(p_run_at, now()),
                coalesce(p_max_attempts, 5))
        ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running')
        DO UPDATE SET run_at = EXCLUDED.run_at
         WHERE jobs.state = 'queued' AND EXCLUDED.run_at <> jobs.run_at
        RETURNING id INTO v_id;
    ELSE
        RAISE EXCEPTION 'jobs_enqueue: p_on_active must be keep, earlier or move, not %', p_on_active;
    END IF;
    RETURN v_id;
END;
$$;

-- Cancels the active (queued or running) job of p_kind for an article, with p_reason as its last_error. A
-- running job's runner finds out at its next lease renewal and stops its work (src/jobs/queue.c). Returns the
-- number of jobs cancelled (0 or 1).
CREATE FUNCTION jobs_cancel_active(p_article_id uuid, p_kind text, p_reason text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    UPDATE jobs SET state = 'cancelled', finished_at = now(), last_error = p_reason
     WHERE article_id = p_article_id AND kind = p_kind AND state IN ('queued', 'running');
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
