-- 0010: two SQL functions the statements of sql/queries share instead of pasting the same text. Each is one
-- plain expression, not STRICT and no more volatile than it says, so the planner inlines it into the calling
-- statement: a plan is the one the expression written out would get.

-- The statuses of an article still being generated: the pipeline owns it, and a user's change or an outside
-- completion must not race it. This is the one definition of that list (the CHECK on articles.status in
-- 0001_init.sql lists every status). IMMUTABLE, so an index predicate can use it.
CREATE FUNCTION article_is_generating(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT p_status IN ('queued', 'researching', 'scraping', 'analyzing', 'writing') $$;

-- The generation sweep's index, with its predicate written with the function (it was the list written out):
-- the planner inlines both the index predicate and the query's condition, so a statement that filters on
-- article_is_generating(status) still proves the partial index usable.
DROP INDEX articles_generating_idx;
CREATE INDEX articles_generating_idx ON articles (updated_at) WHERE article_is_generating(status);

-- A timestamp from a request (kit_ts_t in src/http/kit.h, sent as three parameters): p_ts is
-- "YYYY-MM-DD HH:MM:SS[.ffffff]" with an offset when p_has_offset, else a local time read in p_tz. NULL p_ts
-- is NULL. STABLE: reading text as timestamptz depends on the session's settings.
CREATE FUNCTION inkloop_ts(p_ts text, p_has_offset boolean, p_tz text) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN p_ts IS NULL THEN NULL
                      WHEN p_has_offset THEN p_ts::timestamptz
                      ELSE (p_ts::timestamp AT TIME ZONE p_tz) END $$;
