-- 0006_sched: the campaign scheduler (src/sched/sched.c, API.md section 8).
--
-- A tick works in three steps, each correct on its own when several processes tick at once:
--   1. claim: one statement finds the due campaigns through campaigns_due_idx, locks them FOR NO KEY UPDATE
--      SKIP LOCKED for the statement and records a short lease in campaign_sched_claims, so concurrent ticks
--      (other processes, an admin tick beside the timer's) take disjoint campaigns and do not pay the LLM
--      twice for one campaign;
--   2. titles: one LLM call per campaign, outside any transaction;
--   3. commit: campaign_sched_commit, one transaction per campaign that locks the campaign row and decides
--      everything again under that lock. Exactly one article per slot rests on this step alone (the slot row's
--      primary key and the articles unique index), never on the lease: a lease that expired while its tick was
--      still running only costs a second LLM call.

-- Two slots of one campaign can fall on the same instant: articles_per_day > len(posting_times) repeats a
-- time, and on a spring-forward day a time that does not exist (02:30) is read as the instant of the hour
-- after, which may also be a posting time (03:30). Each is a slot of its own with its own article, so the key
-- gains slot_seq: the slot's rank among the campaign's slots at that instant (0 for nearly every slot, 1 for
-- the second one at an instant, ...), ranked by slot_index. The rank is stored rather than slot_index itself so
-- that reordering posting_times does not turn an already handled 09:00 slot into a "new" one.
ALTER TABLE campaign_slots ADD COLUMN slot_seq integer NOT NULL DEFAULT 0 CHECK (slot_seq >= 0);
ALTER TABLE campaign_slots DROP CONSTRAINT campaign_slots_pkey;
ALTER TABLE campaign_slots ADD PRIMARY KEY (campaign_id, slot_at, slot_seq);

ALTER TABLE articles ADD COLUMN slot_seq integer CHECK (slot_seq >= 0);
UPDATE articles SET slot_seq = 0 WHERE slot_at IS NOT NULL;
ALTER TABLE articles ADD CHECK ((slot_at IS NULL) = (slot_seq IS NULL));
DROP INDEX articles_campaign_slot_key;
CREATE UNIQUE INDEX articles_campaign_slot_key ON articles (campaign_id, slot_at, slot_seq)
    WHERE campaign_id IS NOT NULL AND slot_at IS NOT NULL;

-- Who is working on a campaign's due slots right now. A row lives as long as its campaign (one per campaign
-- that was ever due): the commit ends a lease by setting claimed_until to now() rather than deleting, and the
-- claim query skips rows claimed by its own tick, so a tick that loops over several claim batches never takes
-- a campaign twice (a campaign whose titles failed stays due, and would otherwise be retried in a loop).
-- Kept out of campaigns so that claiming does not touch campaigns.updated_at.
CREATE TABLE campaign_sched_claims (
    campaign_id   uuid        PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    claimed_by    text        NOT NULL,  -- the tick: "<host>:<pid>:<nonce>:<tick number>"
    claimed_until timestamptz NOT NULL
);

-- The slots of campaign c due at p_now that have no campaign_slots row yet, in time order: S with
-- S - p_lead <= p_now < S + p_grace (API.md section 8), and not before the cursor next_slot_at (slots before it
-- were handled, or skipped while the campaign was paused). Older slots are simply not looked at: a slot missed
-- by more than the grace is skipped, never burst out later. The window is at most lead + grace long, so the
-- cost does not grow with the campaign's age.
CREATE FUNCTION campaign_due_slots(c campaigns, p_now timestamptz, p_lead interval, p_grace interval)
RETURNS TABLE (slot_at timestamptz, slot_seq integer)
LANGUAGE sql STABLE AS $$
    SELECT s.slot_at, s.slot_seq
      FROM (SELECT b.slot_at, (row_number() OVER (PARTITION BY b.slot_at ORDER BY b.slot_index) - 1)::integer AS slot_seq
              FROM campaign_slots_between(c.posting_times, c.articles_per_day, c.timezone, c.start_date, c.end_date,
                                          greatest(c.next_slot_at, p_now - p_grace + interval '1 microsecond'),
                                          p_now + p_lead + interval '1 microsecond') AS b) AS s
     WHERE NOT EXISTS (SELECT 1 FROM campaign_slots x
                        WHERE x.campaign_id = c.id AND x.slot_at = s.slot_at AND x.slot_seq = s.slot_seq)
     ORDER BY s.slot_at, s.slot_seq
$$;

-- One campaign's part of a tick, in the caller's transaction: creates the articles of the due slots that have
-- a title, charges them, moves the cursor and applies the stop rules. p_titles are the LLM's titles in order
-- (one per slot, used in slot order; NULL or empty when the call failed, with the reason in p_error);
-- p_article_ids holds one fresh id per title, chosen by the caller so that the batch's next statement can
-- enqueue the generation jobs of exactly the articles created here. p_credits is CREDITS_PER_ARTICLE (0: not
-- charged, as for POST /articles).
--
-- Everything is decided again under the campaign's row lock, whatever the claim saw: the campaign may have
-- been paused, patched or handled by another tick in between. For each due slot in time order:
--   * total_articles reached: stop, the campaign is completed;
--   * no title left (the LLM failed or gave too few usable ones): the slot stays due, the cursor stays on the
--     first such slot, last_error says why; the next tick retries while the slot is within its grace;
--   * a title equal to one of the campaign's earlier titles (case-insensitively; the prompt's avoid list only
--     holds the latest ones) is dropped: raw_query keeps the title an article was created with, topic the one
--     the pipeline gave it on completion;
--   * not enough credits: stop, the campaign is paused with pause_reason insufficient_credits, nothing is
--     charged for that slot (resume recomputes the cursor from the time of the resume);
--   * else the slot row is inserted (ON CONFLICT DO NOTHING: only a slot this transaction wins gets an
--     article), then the article charged one credit, then the slot row points at it.
-- The cursor then moves to the first slot still pending, else to the first slot after the window; none left
-- (end_date passed) completes the campaign. Returns what was done.
CREATE FUNCTION campaign_sched_commit(p_id uuid, p_now timestamptz, p_lead interval, p_grace interval,
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
        INSERT INTO articles (id, user_id, topic, raw_query, category, target_length, source_count, scheduled_at,
                              timezone, webhook_integration_id, language, campaign_id, slot_at, slot_seq,
                              is_recurring, charge_seq, charge_txn_id, credits_charged)
        VALUES (v_id, c.user_id, v_title, v_title, c.category, c.target_length, c.source_count, s.slot_at,
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
