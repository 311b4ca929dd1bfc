-- Titles (src/http/titlegen.c, src/http/titles.c): suggested by the LLM, verified by the user, generated in
-- batches.

-- name: titles_insert
-- The titles arrive as a JSON array so any text travels safely; ORDINALITY keeps the LLM's order.
INSERT INTO titles (user_id, description, title)
SELECT $1, $2, t.value FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS t
 ORDER BY t.ordinality
RETURNING id, title, description, status, created_at;
