-- The campaign slot scheduler (src/sched/scheduler.c): claim due campaigns, commit one campaign's new
-- articles, release leases. The rules are in the database: campaign_due_slots (0006_sched.sql) and
-- campaign_sched_commit (0006_sched.sql, replaced by 0007_article_title.sql).

-- name: sched_claim
-- $1 at, $2 lead s, $3 grace s, $4 tick id, $5 lease s, $6 batch size. The due campaigns in cursor order
-- through campaigns_due_idx, minus those leased by another tick (or handled by this one already), locked for
-- the statement with SKIP LOCKED so concurrent claims split them, and leased to this tick (the ON CONFLICT
-- condition is the atomic part). For each: the number of due slots (what the LLM is asked for) and the
-- campaign's latest distinct titles: raw_query (the title an article was created with) and topic (the same,
-- unless the user edited it), from its last 100 articles through articles_campaign_idx, so the cost does not
-- grow with the campaign.
WITH due AS (
  SELECT c.id FROM campaigns c
   WHERE c.status = 'active' AND c.next_slot_at <= $1::timestamptz + make_interval(secs => $2::int)
     AND NOT EXISTS (SELECT 1 FROM campaign_sched_claims k WHERE k.campaign_id = c.id
                        AND (k.claimed_until > now() OR k.claimed_by = $4::text))
   ORDER BY c.next_slot_at LIMIT $6::int
   FOR NO KEY UPDATE OF c SKIP LOCKED),
 claimed AS (
  INSERT INTO campaign_sched_claims AS k (campaign_id, claimed_by, claimed_until)
  SELECT id, $4::text, now() + make_interval(secs => $5::int) FROM due
  ON CONFLICT (campaign_id) DO UPDATE SET claimed_by = EXCLUDED.claimed_by,
                                          claimed_until = EXCLUDED.claimed_until
   WHERE k.claimed_until <= now() AND k.claimed_by <> EXCLUDED.claimed_by
  RETURNING k.campaign_id)
 SELECT c.id, c.topic, c.description,
        (SELECT count(*) FROM campaign_due_slots(c, $1::timestamptz, make_interval(secs => $2::int),
                                                 make_interval(secs => $3::int))) AS due,
        (SELECT coalesce(json_agg(t.title ORDER BY t.last DESC), '[]')::text
           FROM (SELECT min(x.title) AS title, max(x.created_at) AS last
                   FROM (SELECT a.created_at, unnest(ARRAY[a.topic, a.raw_query]) AS title
                           FROM (SELECT topic, raw_query, created_at FROM articles WHERE campaign_id = c.id
                                  ORDER BY created_at DESC LIMIT 100) a) x
                  GROUP BY lower(x.title) ORDER BY last DESC LIMIT 50) t) AS avoid
   FROM claimed JOIN campaigns c ON c.id = claimed.campaign_id
  ORDER BY c.next_slot_at;

-- name: sched_commit
-- One campaign's transaction, with the next statement in the same batch. $5 titles as a JSON array (any text
-- travels safely; ORDINALITY keeps the LLM's order), $6 one fresh article id per title.
SELECT created, pending, status, pause_reason
  FROM campaign_sched_commit($1::uuid, $2::timestamptz, make_interval(secs => $3::int),
       make_interval(secs => $4::int),
       ARRAY(SELECT e.t FROM jsonb_array_elements_text($5::jsonb) WITH ORDINALITY AS e(t, n)
                   ORDER BY e.n),
       $6::uuid[], $7::int, $8::text, $9::text);

-- name: sched_release
-- A tick stopped early (shutdown, deadline) ends its leases, so other processes need not wait for them.
UPDATE campaign_sched_claims SET claimed_until = now()
 WHERE claimed_by = $1 AND claimed_until > now();

-- name: sched_enqueue
-- The generation jobs of the articles the commit created: JOBS_ENQUEUE_SQL's insert for a set of articles
-- (ids of articles not created simply match nothing).
INSERT INTO jobs (kind, article_id)
 SELECT 'generate_article', a.id FROM articles a WHERE a.id = ANY($1::uuid[])
 ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING;

