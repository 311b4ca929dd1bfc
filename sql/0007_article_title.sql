-- 0007_article_title: the article's own title, apart from what the user gave.
--
-- topic (and raw_query) are what the user gave: the free-form query, or the approved or campaign title. The
-- pipeline never rewrites them. title is the article's H1 (API.md section 4):
--   * an article created from a title (POST /generate/batch, a campaign slot) has title = that title from
--     the start; the writer is told to use it and the pipeline makes the stored Markdown's "# " line say it;
--   * a free-form POST /articles has title NULL until the pipeline completes it with the H1 the model wrote.
-- So while an article is generating, a non-NULL title is the title the article must carry. Writers of new
-- content outside the pipeline (PATCH, /internal/article-complete) set title to that content's H1, but only
-- for an article that is not generating.
ALTER TABLE articles ADD COLUMN title text CHECK (title IS NULL OR title <> '');

-- Existing rows: a generated article's topic was its H1 (the pipeline used to copy the H1 into topic); an
-- article of a campaign slot still in the works gets its slot title. Free-form articles still generating, and
-- batch ones (not told apart from free-form before this column), get theirs on completion.
-- Filling in a derived column is not an edit of the article: updated_at stays as it was.
ALTER TABLE articles DISABLE TRIGGER articles_updated_at;
UPDATE articles SET title = CASE WHEN content IS NOT NULL THEN topic WHEN slot_at IS NOT NULL THEN raw_query END
 WHERE content IS NOT NULL OR slot_at IS NOT NULL;
ALTER TABLE articles ENABLE TRIGGER articles_updated_at;

-- campaign_sched_commit of 0006, unchanged but for the article's title: the slot's title.
CREATE OR REPLACE FUNCTION campaign_sched_commit(p_id uuid, p_now timestamptz, p_lead interval, p_grace interval,
                                      p_titles text[], p_article_ids uuid[], p_credits integer, p_claimer text,
                                      p_error text)
RETURNS TABLE (created integer, pending integer, status text, pause_reason text, next_slot_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c campaigns;
    s record;
    v_created integer := 0;
    v_pending integer := 0;
    v_first_pending timestamptz;
    v_ntitles integer := coalesce(cardinality(p_titles), 0);
    v_title_i integer := 0;
    v_title text;
    v_have integer;
    v_stop text;  -- NULL, 'completed' or 'insufficient_credits'
    v_next timestamptz;
    v_id uuid;
BEGIN
    -- The lease ends with this transaction whatever it decides. A lease of another tick (ours expired and was
    -- taken over) is left to that tick.
    UPDATE campaign_sched_claims k SET claimed_until = now() WHERE k.campaign_id = p_id AND k.claimed_by = p_claimer;

    SELECT * INTO c FROM campaigns x WHERE x.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0, 0, NULL::text, NULL::text, NULL::timestamptz;
        RETURN;
    END IF;
    IF c.status <> 'active' THEN
        RETURN QUERY SELECT 0, 0, c.status, c.pause_reason, c.next_slot_at;
        RETURN;
    END IF;

    FOR s IN SELECT d.slot_at, d.slot_seq FROM campaign_due_slots(c, p_now, p_lead, p_grace) AS d LOOP
        IF c.total_articles IS NOT NULL AND c.articles_generated + v_created >= c.total_articles THEN
            v_stop := 'completed';
            EXIT;
        END IF;
        v_title := NULL;
        WHILE v_title IS NULL AND v_title_i < v_ntitles LOOP
            v_title_i := v_title_i + 1;
            v_title := p_titles[v_title_i];
            IF v_title IS NULL OR v_title = '' OR EXISTS (
                   SELECT 1 FROM articles a
                    WHERE a.campaign_id = p_id AND (lower(a.topic) = lower(v_title) OR lower(a.raw_query) = lower(v_title))) THEN
                v_title := NULL;
            END IF;
        END LOOP;
        IF v_title IS NULL THEN
            v_pending := v_pending + 1;
            v_first_pending := coalesce(v_first_pending, s.slot_at);
            CONTINUE;
        END IF;
        IF p_credits > 0 THEN
            SELECT u.credits INTO v_have FROM users u WHERE u.id = c.user_id FOR NO KEY UPDATE;
            IF v_have < p_credits THEN
                v_stop := 'insufficient_credits';
                EXIT;
            END IF;
        END IF;
        INSERT INTO campaign_slots (campaign_id, slot_at, slot_seq) VALUES (p_id, s.slot_at, s.slot_seq)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        v_id := p_article_ids[v_created + 1];
        INSERT INTO articles (id, user_id, topic, raw_query, title, category, target_length, source_count,
                              scheduled_at, timezone, webhook_integration_id, language, campaign_id, slot_at,
                              slot_seq, is_recurring, charge_seq, charge_txn_id, credits_charged)
        VALUES (v_id, c.user_id, v_title, v_title, v_title, c.category, c.target_length, c.source_count, s.slot_at,
                c.timezone, c.webhook_integration_id, c.language, p_id, s.slot_at, s.slot_seq, true,
                CASE WHEN p_credits > 0 THEN 1 ELSE 0 END,
                CASE WHEN p_credits > 0 THEN credits_charge(c.user_id, p_credits, v_id, 1, 'Campaign article') END,
                greatest(p_credits, 0));
        UPDATE campaign_slots x SET article_id = v_id
         WHERE x.campaign_id = p_id AND x.slot_at = s.slot_at AND x.slot_seq = s.slot_seq;
        v_created := v_created + 1;
    END LOOP;

    IF v_stop IS NULL AND c.total_articles IS NOT NULL AND c.articles_generated + v_created >= c.total_articles THEN
        v_stop := 'completed';
    END IF;
    IF v_stop IS NULL THEN
        v_next := coalesce(v_first_pending, campaign_next_slot(c, p_now + p_lead + interval '1 microsecond'));
        IF v_next IS NULL THEN
            v_stop := 'completed';
        END IF;
    END IF;

    UPDATE campaigns x
       SET articles_generated = x.articles_generated + v_created,
           credits_used = x.credits_used + v_created * greatest(p_credits, 0),
           last_run_at = CASE WHEN v_created > 0 THEN p_now ELSE x.last_run_at END,
           status = CASE v_stop WHEN 'completed' THEN 'completed' WHEN 'insufficient_credits' THEN 'paused'
                                ELSE x.status END,
           pause_reason = CASE WHEN v_stop = 'insufficient_credits' THEN 'insufficient_credits' END,
           next_slot_at = v_next,
           next_run_at = v_next,
           last_error = CASE WHEN v_pending > 0
                             THEN coalesce(p_error, format('Title generation gave no usable title for %s due slot(s)',
                                                           v_pending))
                        END
     WHERE x.id = p_id
    RETURNING x.status, x.pause_reason INTO c.status, c.pause_reason;

    RETURN QUERY SELECT v_created, v_pending, c.status, c.pause_reason, v_next;
END;
$$;
