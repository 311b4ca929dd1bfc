-- 0005_pipeline: the generation sweep (src/pipeline/generate.c) looks for articles still "generating" whose
-- job ended without them; this index keeps that query to the few articles in those states.
CREATE INDEX articles_generating_idx ON articles (updated_at)
    WHERE status IN ('queued', 'researching', 'scraping', 'analyzing', 'writing');
