-- Titles (src/http/titlegen.c, src/http/titles.c): suggested by the LLM, verified by the user, turned into
-- articles in batches.

-- name: titles_insert
-- The titles arrive as a JSON array so any text travels safely; ORDINALITY keeps the LLM's order.
INSERT INTO titles (user_id, description, title)
SELECT $1, $2, t.value FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS t
 ORDER BY t.ordinality
RETURNING id, title, description, status, created_at;

-- name: title_verify
UPDATE titles SET title = coalesce($3, title), status = $4 WHERE id = $1 AND user_id = $2
 RETURNING id, title, description, status, created_at AT TIME ZONE 'UTC' AS created_at;

-- name: titles_require
-- Every title named must be the caller's and approved; anything else is the same 400, so another user's title
-- ids reveal nothing. $2 holds distinct ids.
SELECT CASE WHEN (SELECT count(*) FROM titles WHERE id = ANY($2::uuid[]) AND user_id = $1
                     AND status = 'approved') <> cardinality($2::uuid[])
            THEN inkloop_raise('IL400', 'Some titles not found') END AS ok;

-- name: titles_credits_require
-- "N credits or none": the whole amount is checked (and the balance locked) before the first charge, so the
-- 402 names N; each article is then charged as its own attempt.
SELECT credits_require($1, $2::int);

-- name: titles_insert_articles
-- One article per title, in the order given: topic = raw_query = title = the approved title (a title set from
-- the start tells the pipeline to keep it as the H1). Parameters as article_insert (articles.sql), but $2 the
-- title ids and $3 the new article ids (same order).
INSERT INTO articles (id, user_id, topic, raw_query, title, category, target_length, source_count,
                      scheduled_at, timezone, webhook_integration_id, language, charge_seq, charge_txn_id,
                      credits_charged)
SELECT x.aid, $1, t.title, left(t.title, 2000), t.title, $4, $5::int, $6::int, inkloop_ts($7, $8, $9), $9,
       $10::uuid, $11, CASE WHEN $12::int > 0 THEN 1 ELSE 0 END,
       CASE WHEN $12::int > 0 THEN credits_charge($1, $12::int, x.aid, 1, 'Article generation') END, $12::int
  FROM unnest($2::uuid[], $3::uuid[]) WITH ORDINALITY AS x(tid, aid, ord)
  JOIN titles t ON t.id = x.tid AND t.user_id = $1 AND t.status = 'approved'
 ORDER BY x.ord;
