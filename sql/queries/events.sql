-- Article status events (src/events/events.c, the hub behind the SSE streams of src/http/sse.c): the first
-- frame, and the re-read of every watched article after the LISTEN connection was down (notifications sent
-- meanwhile are lost).

-- name: events_article
SELECT status, progress_detail, updated_at AT TIME ZONE 'UTC' AS at FROM articles WHERE id = $1 AND user_id = $2;

-- name: events_resync
SELECT id, status, progress_detail, updated_at AT TIME ZONE 'UTC' AS at FROM articles WHERE id = ANY($1::uuid[]);
