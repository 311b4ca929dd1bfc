-- 0001_init: the whole inkloop data model (API.md, mission/data-flow.md).
--
-- Applied once by `inkloop migrate` (src/db/migrate.c) inside one transaction that the runner opens, so this
-- file has no BEGIN/COMMIT and nothing that cannot run in a transaction (no CREATE INDEX CONCURRENTLY). The
-- runner keeps its own schema_migrations table. Core PostgreSQL 15 only: gen_random_uuid() is core since 13;
-- no pgcrypto, no citext (case-insensitive uniqueness is a unique index on lower(...)).
--
-- Conventions: ids are uuid (gen_random_uuid()) except jobs (bigint identity: a queue wants a cheap, ordered
-- key); every timestamp is timestamptz; statuses are text with a CHECK (adding one is a one-line migration,
-- unlike an enum inside a transaction); updated_at is maintained by one generic trigger.

---------------------------------------------------------------------------------------------------------------
-- Generic helpers
---------------------------------------------------------------------------------------------------------------

-- Keeps updated_at honest without every UPDATE having to remember it.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Refuses a timezone PostgreSQL cannot resolve (error 22023 "time zone ... not recognized"), so the scheduler
-- and "timestamps without offset are read in the record's timezone" can never meet a bad name at run time.
-- The API validates first and answers 422; this is the backstop.
CREATE FUNCTION check_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;
    RETURN NEW;
END;
$$;

-- Campaign posting_times: 1-24 distinct "HH:MM" strings (API.md section 4). Stored as text[] in the exact form
-- the API returns; the scheduler casts each to time ('09:30'::time). Order is kept as given because slot i
-- uses posting_times[i mod len] (section 8).
CREATE FUNCTION posting_times_valid(t text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_ndims(t) = 1
       AND cardinality(t) BETWEEN 1 AND 24
       AND NOT EXISTS (SELECT 1 FROM unnest(t) AS x
                        WHERE x IS NULL OR x !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$')
       AND (SELECT count(DISTINCT x) FROM unnest(t) AS x) = cardinality(t)
$$;

---------------------------------------------------------------------------------------------------------------
-- Users and authentication
---------------------------------------------------------------------------------------------------------------

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320 AND email ~ '^[^@\s]+@[^@\s]+$'),
    username      text        NOT NULL CHECK (username ~ '^[A-Za-z0-9_.-]{3,50}$'),
    password_hash text        NOT NULL,  -- bcrypt/argon2 encoded string, never the password
    -- The balance. CHECK is the last line of defence: a charge is
    -- "UPDATE users SET credits = credits - n WHERE id = $1 AND credits >= n", and even a buggy one cannot
    -- drive it negative (it fails with 23514 instead).
    credits       integer     NOT NULL DEFAULT 0 CHECK (credits >= 0),
    plan          text        NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- "Email or username already registered": both unique regardless of case (Alice@x.com and alice@x.com are
-- one mailbox to a user). Login looks up WHERE lower(email) = lower($1), which uses this index.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Refresh tokens (cookie refresh_token, 7 days). Only a SHA-256 of the token is stored.
--
-- Rotation with a grace window: "several refreshes racing with the same cookie must all succeed". A token is
-- accepted when
--     revoked_at IS NULL AND expires_at > now()
--     AND (rotated_at IS NULL OR rotated_at > now() - <grace>)      -- grace: 60 s suggested
-- Each accepted refresh mints a NEW token (a sibling when the presented one was already rotated; we cannot hand
-- out the first successor because we only hold its hash) and marks the presented one rotated, keeping the FIRST
-- rotation time so repeated use cannot extend the window:
--     UPDATE refresh_tokens SET rotated_at = coalesce(rotated_at, now()),
--                               replaced_by = coalesce(replaced_by, $new_id)
--      WHERE token_hash = $1 AND <accepted> RETURNING user_id, family_id;
-- then INSERT the new token with the same family_id (both can be one statement with CTEs; replaced_by is
-- DEFERRABLE so the order does not matter). Whichever Set-Cookie the browser keeps last is valid.
-- A rotated token presented after the grace window is a replay: answer 401 "Invalid token" (and the app may
-- revoke the whole family_id). Logout sets revoked_at on the presented token (or its family).
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL DEFAULT gen_random_uuid(),  -- shared by every rotation of one login
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),  -- SHA-256 of the cookie value
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,  -- first time it was exchanged for a new token; start of the grace window
    replaced_by uuid        REFERENCES refresh_tokens (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    revoked_at  timestamptz,  -- logout (or replay detection)
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The cookie lookup, and a guarantee that one hash never names two tokens.
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
-- Purging expired tokens.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- API keys: "sk_" + 43 url-safe chars; prefix = first 12 chars (shown in lists); only SHA-256 stored.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    prefix       text        NOT NULL CHECK (char_length(prefix) = 12 AND prefix LIKE 'sk\_%'),
    key_hash     bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
-- Authentication is "WHERE key_hash = $1 AND revoked_at IS NULL"; unique so a key identifies one row/user.
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);

---------------------------------------------------------------------------------------------------------------
-- Credits ledger
---------------------------------------------------------------------------------------------------------------

-- One row per balance change, written in the same transaction as the change to users.credits, so the ledger
-- always explains the balance: balance_after is users.credits right after this row.
--
-- Charge/refund bookkeeping (see also articles.charge_seq / charge_txn_id):
-- * Every generation attempt of an article is one 'usage' row: reference_type 'article', reference_id = the
--   article id, charge_seq = the attempt number (1 at creation, 2.. for each retry), amount < 0.
--   Unique (reference_type, reference_id, charge_seq) for usage: a duplicated create/retry cannot charge the
--   same attempt twice.
-- * A refund is a 'refund' row whose refund_of points at the usage row it reverses; refund_of is UNIQUE, so each
--   charge is refunded at most once however many failure paths (pipeline failure, cancel, DELETE, repeated
--   /internal/article-complete) race to refund it. Retries charge again (new charge_seq) and so can be refunded
--   again, each once.
-- Use credits_require / credits_charge / credits_refund / credits_add below rather than hand-written SQL.
CREATE TABLE credit_transactions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount          integer     NOT NULL,
    balance_after   integer     NOT NULL CHECK (balance_after >= 0),
    type            text        NOT NULL CHECK (type IN ('usage', 'refund', 'grant', 'purchase')),
    reference_type  text,       -- 'article' for usage/refund; NULL for grants (signup, admin)
    reference_id    uuid,       -- not a foreign key: the ledger outlives deleted articles
    charge_seq      integer     CHECK (charge_seq >= 1),
    refund_of       uuid        REFERENCES credit_transactions (id) ON DELETE CASCADE,
    description     text,
    tokens_consumed integer     CHECK (tokens_consumed >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((reference_type IS NULL) = (reference_id IS NULL)),
    CHECK (CASE type WHEN 'usage'    THEN amount < 0
                     WHEN 'refund'   THEN amount > 0
                     WHEN 'purchase' THEN amount > 0
                     ELSE amount <> 0 END),
    -- A refund always names the charge it reverses; nothing else may.
    CHECK ((type = 'refund') = (refund_of IS NOT NULL))
);
-- GET /credits/transactions: newest first per user.
CREATE INDEX credit_transactions_user_idx ON credit_transactions (user_id, created_at DESC, id DESC);
-- One refund per charge (see above).
CREATE UNIQUE INDEX credit_transactions_refund_of_key ON credit_transactions (refund_of);
-- One charge per (article, attempt number) (see above).
CREATE UNIQUE INDEX credit_transactions_charge_key ON credit_transactions (reference_type, reference_id, charge_seq)
    WHERE type = 'usage' AND charge_seq IS NOT NULL;
-- Ledger entries of one article (refund lookups, audits).
CREATE INDEX credit_transactions_reference_idx ON credit_transactions (reference_id) WHERE reference_id IS NOT NULL;

-- Locks the user's row and raises SQLSTATE 'IL402' with the contract's message when credits < p_needed.
-- Use it first in a transaction that then makes several charges (POST /generate/batch: "N credits or none",
-- with the message naming N, not 1). The error aborts the batch; map IL402 to HTTP 402 with its message.
CREATE FUNCTION credits_require(p_user uuid, p_needed integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_have integer;
BEGIN
    SELECT credits INTO v_have FROM users WHERE id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'User not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF v_have < p_needed THEN
        RAISE EXCEPTION 'Insufficient credits. Need %, have %', p_needed, v_have
            USING ERRCODE = 'IL402', DETAIL = format('need=%s have=%s', p_needed, v_have);
    END IF;
    RETURN v_have;
END;
$$;

-- Takes p_amount (> 0) credits for one generation attempt and writes the 'usage' row; returns its id (store it
-- in articles.charge_txn_id). Raises IL402 "Insufficient credits. Need N, have M" when the balance is short.
-- Creating an article and charging it can be one statement, e.g.
--   INSERT INTO articles (id, user_id, ..., charge_seq, charge_txn_id, credits_charged)
--   SELECT g.id, $1, ..., 1, credits_charge($1, 1, g.id, 1, 'Article generation'), 1
--     FROM (SELECT gen_random_uuid() AS id) g RETURNING *;
CREATE FUNCTION credits_charge(p_user uuid, p_amount integer, p_article uuid, p_charge_seq integer,
                               p_description text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_balance integer;
    v_id uuid;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'credits_charge: amount must be positive, got %', p_amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE users SET credits = credits - p_amount
     WHERE id = p_user AND credits >= p_amount
    RETURNING credits INTO v_balance;
    IF NOT FOUND THEN
        SELECT credits INTO v_balance FROM users WHERE id = p_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'User not found' USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'Insufficient credits. Need %, have %', p_amount, v_balance
            USING ERRCODE = 'IL402', DETAIL = format('need=%s have=%s', p_amount, v_balance);
    END IF;
    INSERT INTO credit_transactions (user_id, amount, balance_after, type, reference_type, reference_id,
                                     charge_seq, description)
    VALUES (p_user, -p_amount, v_balance, 'usage', 'article', p_article, p_charge_seq, p_description)
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

-- Reverses one charge, at most once. Returns the credits given back: the charge's amount, or 0 when p_charge is
-- NULL, unknown, not a usage row, or already refunded. Safe to call from every failure path concurrently: the
-- charge row is locked, and the unique index on refund_of backs it up.
CREATE FUNCTION credits_refund(p_charge uuid, p_description text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    c credit_transactions;
    v_balance integer;
BEGIN
    IF p_charge IS NULL THEN
        RETURN 0;
    END IF;
    SELECT * INTO c FROM credit_transactions WHERE id = p_charge AND type = 'usage' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF EXISTS (SELECT 1 FROM credit_transactions WHERE refund_of = p_charge) THEN
        RETURN 0;
    END IF;
    UPDATE users SET credits = credits - c.amount WHERE id = c.user_id RETURNING credits INTO v_balance;
    INSERT INTO credit_transactions (user_id, amount, balance_after, type, reference_type, reference_id,
                                     charge_seq, refund_of, description)
    VALUES (c.user_id, -c.amount, v_balance, 'refund', c.reference_type, c.reference_id, c.charge_seq,
            p_charge, p_description);
    RETURN -c.amount;
END;
$$;

-- Grants (signup SIGNUP_CREDITS, POST /admin/credits) and purchases. A negative grant (admin correction) that
-- would take the balance below zero fails with the users CHECK (23514). Returns the new balance.
CREATE FUNCTION credits_add(p_user uuid, p_amount integer, p_type text, p_description text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_balance integer;
BEGIN
    IF p_type NOT IN ('grant', 'purchase') THEN
        RAISE EXCEPTION 'credits_add: type must be grant or purchase, got %', p_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE users SET credits = credits + p_amount WHERE id = p_user RETURNING credits INTO v_balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'User not found' USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO credit_transactions (user_id, amount, balance_after, type, description)
    VALUES (p_user, p_amount, v_balance, p_type, p_description);
    RETURN v_balance;
END;
$$;

---------------------------------------------------------------------------------------------------------------
-- Webhook integrations (the user's receiving sites)
---------------------------------------------------------------------------------------------------------------

-- Hard-deleted by DELETE /integrations/{id}; articles and campaigns that pointed at it keep existing with
-- webhook_integration_id set to NULL (an article without an integration simply stays 'completed').
-- The secret and api_key are stored in clear because they are needed to sign/authenticate outgoing requests;
-- the API never returns them except GET /integrations/{id}/secret.
CREATE TABLE webhook_integrations (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                 text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    webhook_url          text        NOT NULL CHECK (webhook_url ~* '^https?://[^/?#\s]+'),
    webhook_secret       text        NOT NULL CHECK (webhook_secret <> ''),  -- generated whsec_... when none given
    platform_type        text        NOT NULL DEFAULT 'custom' CHECK (platform_type <> ''),
    api_key              text,       -- the receiving site's key, sent as X-API-Key; never one of ours
    is_active            boolean     NOT NULL DEFAULT true,  -- false after a 410 (disabled_reason says so)
    disabled_reason      text,
    last_test_at         timestamptz,
    last_test_status     text        CHECK (last_test_status IN ('success', 'failure')),
    last_success_at      timestamptz,
    consecutive_failures integer     NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_integrations_user_idx ON webhook_integrations (user_id, created_at DESC);
CREATE TRIGGER webhook_integrations_updated_at BEFORE UPDATE ON webhook_integrations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

---------------------------------------------------------------------------------------------------------------
-- Campaigns
---------------------------------------------------------------------------------------------------------------

-- Scheduler columns:
-- * next_slot_at: the scheduler's cursor, the earliest slot not yet materialized (or skipped). A tick only looks
--   at   WHERE status = 'active' AND next_slot_at <= $now + GENERATION_LEAD_S   (partial index below), locks
--   those rows FOR UPDATE SKIP LOCKED, materializes/skips their due slots and advances the cursor. NULL = no
--   slot left (end_date passed).
-- * next_run_at / last_run_at: the API's view (next slot time / time of the last batch).
-- * last_error: why the last tick for this campaign failed (title LLM call etc.), for operators.
-- credits_used is net of refunds; articles_generated counts articles created; articles_posted successful posts.
CREATE TABLE campaigns (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                   text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description            text,
    topic                  text        NOT NULL CHECK (topic <> ''),
    category               text        NOT NULL DEFAULT 'General',
    articles_per_day       integer     NOT NULL CHECK (articles_per_day BETWEEN 1 AND 10),
    posting_times          text[]      NOT NULL CHECK (posting_times_valid(posting_times)),
    timezone               text        NOT NULL DEFAULT 'UTC',
    start_date             date        NOT NULL,
    end_date               date,
    total_articles         integer     CHECK (total_articles >= 1),
    target_length          integer     NOT NULL DEFAULT 1500 CHECK (target_length BETWEEN 300 AND 5000),
    source_count           integer     NOT NULL DEFAULT 5 CHECK (source_count BETWEEN 1 AND 10),
    language               text        NOT NULL DEFAULT 'en' CHECK (char_length(language) BETWEEN 2 AND 35),
    status                 text        NOT NULL DEFAULT 'active'
                                       CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
    pause_reason           text,       -- e.g. 'insufficient_credits'; NULL unless paused
    articles_generated     integer     NOT NULL DEFAULT 0 CHECK (articles_generated >= 0),
    articles_posted        integer     NOT NULL DEFAULT 0 CHECK (articles_posted >= 0),
    credits_used           integer     NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    webhook_url            text,       -- shown by the API; the integration is what delivery uses
    webhook_integration_id uuid        REFERENCES webhook_integrations (id) ON DELETE SET NULL,
    next_slot_at           timestamptz,
    last_run_at            timestamptz,
    next_run_at            timestamptz,
    last_error             text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (end_date IS NULL OR end_date >= start_date),
    CHECK (pause_reason IS NULL OR status = 'paused')
);
CREATE INDEX campaigns_user_idx ON campaigns (user_id, created_at DESC, id DESC);
-- The scheduler tick reads only due active campaigns, so its cost follows due campaigns, not all campaigns.
CREATE INDEX campaigns_due_idx ON campaigns (next_slot_at) WHERE status = 'active';
CREATE INDEX campaigns_integration_idx ON campaigns (webhook_integration_id) WHERE webhook_integration_id IS NOT NULL;
CREATE TRIGGER campaigns_updated_at BEFORE UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER campaigns_timezone BEFORE INSERT OR UPDATE OF timezone ON campaigns
    FOR EACH ROW EXECUTE FUNCTION check_timezone();

---------------------------------------------------------------------------------------------------------------
-- Articles
---------------------------------------------------------------------------------------------------------------

-- Status: queued -> researching -> scraping -> analyzing -> writing -> completed -> posted; failed,
-- delivery_failed, cancelled. Only the system writes it (the API refuses status in PATCH).
--
-- Stage persistence (API.md section 7: "each persisted before the next starts"): last_stage_done names the last
-- stage whose output is stored; a restarted job resumes after it and never pays for an LLM call twice.
--   research -> research_results (the de-duplicated candidates: [{url, title, snippet}], up to 2 x source_count)
--   scrape   -> article_sources rows (kept pages with extracted text, position = citation number [n])
--   analyze  -> brief, meta_description, slug
--   write    -> content, content_html, word_count (write_draft holds a reply cut off by the length limit
--               while continuation calls are pending, with write_calls counting them)
-- Each LLM call's usage is added to prompt_tokens / completion_tokens / tokens_used in the same UPDATE that
-- stores that call's output, so tokens are never lost or counted twice across a restart.
--
-- Charge bookkeeping: charge_seq = number of generation attempts charged (1 at creation, +1 per retry);
-- charge_txn_id = the usage row of the current attempt (refund it with credits_refund(charge_txn_id, ...) on
-- failure/cancel; idempotent); credits_charged = net credits this article holds (charges - refunds).
--
-- Delivery (API.md section 6): when an article completes with an integration, next_delivery_at is set to
-- coalesce(scheduled_at, now()) (and to now() + delay after a failed attempt; NULL when nothing is due).
-- A deliverer claims the article atomically:
--   UPDATE articles SET delivery_claimed_until = now() + <timeout + margin>, delivery_claimed_by = $me
--    WHERE id = $1 AND status = 'completed' AND next_delivery_at <= now()
--      AND (delivery_claimed_until IS NULL OR delivery_claimed_until < now()) RETURNING ...
-- (the sweep does the same with FOR UPDATE SKIP LOCKED over articles_delivery_due_idx), and clears the claim
-- when it records the outcome, so an article is never sent twice concurrently.
CREATE TABLE articles (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    topic                  text        NOT NULL CHECK (topic <> ''),
    raw_query              text        NOT NULL CHECK (char_length(raw_query) BETWEEN 1 AND 2000),
    status                 text        NOT NULL DEFAULT 'queued'
                                       CHECK (status IN ('queued', 'researching', 'scraping', 'analyzing', 'writing',
                                                         'completed', 'posted', 'failed', 'delivery_failed',
                                                         'cancelled')),
    progress_detail        text,       -- the SSE "detail" of the current status
    scheduled_at           timestamptz,
    timezone               text        NOT NULL DEFAULT 'UTC',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    completed_at           timestamptz,
    posted_at              timestamptz,
    category               text        NOT NULL DEFAULT 'General',
    target_length          integer     NOT NULL DEFAULT 1500 CHECK (target_length BETWEEN 300 AND 5000),
    source_count           integer     NOT NULL DEFAULT 5 CHECK (source_count BETWEEN 1 AND 10),
    language               text        NOT NULL DEFAULT 'en' CHECK (char_length(language) BETWEEN 2 AND 35),
    content                text,       -- Markdown
    content_html           text,
    word_count             integer     CHECK (word_count >= 0),
    meta_description       text        CHECK (char_length(meta_description) <= 160),
    slug                   text,
    brief                  jsonb       CHECK (brief IS NULL OR jsonb_typeof(brief) = 'object'),
    campaign_id            uuid        REFERENCES campaigns (id) ON DELETE SET NULL,
    slot_at                timestamptz,  -- the campaign slot this article fills (NULL for one-off articles)
    webhook_integration_id uuid        REFERENCES webhook_integrations (id) ON DELETE SET NULL,
    is_recurring           boolean     NOT NULL DEFAULT false,
    tokens_used            integer     NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    prompt_tokens          integer     NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens      integer     NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    error_message          text,
    retry_count            integer     NOT NULL DEFAULT 0 CHECK (retry_count BETWEEN 0 AND 3),
    -- pipeline stage persistence (see above)
    last_stage_done        text        CHECK (last_stage_done IN ('research', 'scrape', 'analyze', 'write')),
    research_results       jsonb       CHECK (research_results IS NULL OR jsonb_typeof(research_results) = 'array'),
    write_draft            text,
    write_calls            integer     NOT NULL DEFAULT 0 CHECK (write_calls >= 0),
    -- credits (see above)
    charge_seq             integer     NOT NULL DEFAULT 0 CHECK (charge_seq >= 0),
    charge_txn_id          uuid        REFERENCES credit_transactions (id) ON DELETE SET NULL,
    credits_charged        integer     NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    -- delivery (see above)
    posting_attempt_count  integer     NOT NULL DEFAULT 0 CHECK (posting_attempt_count >= 0),
    last_posting_error     text,
    published_url          text,
    next_delivery_at       timestamptz,
    delivery_claimed_until timestamptz,
    delivery_claimed_by    text,
    webhook_id             text,       -- Standard Webhooks id: stable across retries of this article to one
                                       -- integration; (re)set when webhook_integration_id changes
    CHECK (status NOT IN ('completed', 'posted', 'delivery_failed') OR completed_at IS NOT NULL),
    CHECK (status <> 'posted' OR posted_at IS NOT NULL)
);
-- GET /articles: the user's articles newest first (id breaks ties for stable paging).
CREATE INDEX articles_user_created_idx ON articles (user_id, created_at DESC, id DESC);
-- GET /articles?status=... and GET /articles/stats (counts per status for one user).
CREATE INDEX articles_user_status_idx ON articles (user_id, status, created_at DESC);
-- GET /campaigns/{id}/articles, ?campaign_id=..., and "titles differ from the campaign's earlier titles".
CREATE INDEX articles_campaign_idx ON articles (campaign_id, created_at DESC) WHERE campaign_id IS NOT NULL;
-- Exactly one article per (campaign, slot), across restarts and processes (backstop of campaign_slots below).
CREATE UNIQUE INDEX articles_campaign_slot_key ON articles (campaign_id, slot_at)
    WHERE campaign_id IS NOT NULL AND slot_at IS NOT NULL;
-- The delivery sweep: completed articles with an integration whose next attempt is due. Small by construction
-- (posted/failed articles leave it), so the sweep costs what is due, not the table size.
CREATE INDEX articles_delivery_due_idx ON articles (next_delivery_at)
    WHERE status = 'completed' AND webhook_integration_id IS NOT NULL AND next_delivery_at IS NOT NULL;
-- ON DELETE SET NULL from webhook_integrations needs to find the referencing rows without a scan.
CREATE INDEX articles_integration_idx ON articles (webhook_integration_id) WHERE webhook_integration_id IS NOT NULL;
CREATE TRIGGER articles_updated_at BEFORE UPDATE ON articles FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER articles_timezone BEFORE INSERT OR UPDATE OF timezone ON articles
    FOR EACH ROW EXECUTE FUNCTION check_timezone();

-- Progress for GET /articles/{id}/events across processes: every status change is announced on channel
-- 'inkloop_articles' with payload {"id","user_id","status","detail","at"} (JSON). NOTIFY is transactional, so
-- listeners hear only committed changes. The API process LISTENs once and fans out to its SSE streams, then
-- re-reads the row (the payload is a hint; it is capped well under NOTIFY's 8000-byte limit).
CREATE FUNCTION articles_notify_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inkloop_articles',
                      json_build_object('id', NEW.id, 'user_id', NEW.user_id, 'status', NEW.status,
                                        'detail', left(NEW.progress_detail, 500), 'at', now())::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER articles_status_notify AFTER INSERT OR UPDATE OF status ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_notify_status();

-- Campaign slots: the authoritative "this slot was handled" record. The scheduler claims a slot with
--   INSERT INTO campaign_slots (campaign_id, slot_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1
-- and only the winner creates (and charges) the article, in the same transaction. Unlike a unique index on
-- articles alone, this survives the user deleting the article: a deleted slot's article is not re-created
-- (and re-charged) by the next tick. outcome records skipped slots too (no credits, missed by more than grace).
CREATE TABLE campaign_slots (
    campaign_id uuid        NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    slot_at     timestamptz NOT NULL,
    outcome     text        NOT NULL DEFAULT 'created' CHECK (outcome IN ('created', 'skipped_credits', 'missed')),
    article_id  uuid        REFERENCES articles (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, slot_at)
);
CREATE INDEX campaign_slots_article_idx ON campaign_slots (article_id) WHERE article_id IS NOT NULL;

-- Sources of an article: the pages kept by the scrape stage, in citation order.
CREATE TABLE article_sources (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    article_id    uuid        NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    position      integer     NOT NULL CHECK (position >= 1),  -- the [n] cited in the article
    url           text        NOT NULL CHECK (url ~* '^https?://'),
    title         text,
    source_origin text,       -- where the candidate came from (search provider name, e.g. 'searxng', 'brave')
    snippet       text,       -- the search result's summary
    content       text,       -- extracted main text (input of analyze/write)
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- One row per URL ("de-duplicated by URL"), and one source per citation number; also makes re-running a
    -- half-finished scrape stage after a restart idempotent (INSERT ... ON CONFLICT DO NOTHING).
    UNIQUE (article_id, url),
    UNIQUE (article_id, position)
);

---------------------------------------------------------------------------------------------------------------
-- Titles (POST /generate/titles, PATCH /titles/{id}/verify, POST /generate/batch)
---------------------------------------------------------------------------------------------------------------

CREATE TABLE titles (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    description text        NOT NULL,
    title       text        NOT NULL CHECK (title <> ''),
    status      text        NOT NULL DEFAULT 'generated' CHECK (status IN ('generated', 'approved', 'rejected')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX titles_user_idx ON titles (user_id, created_at DESC);
CREATE TRIGGER titles_updated_at BEFORE UPDATE ON titles FOR EACH ROW EXECUTE FUNCTION set_updated_at();

---------------------------------------------------------------------------------------------------------------
-- Durable job queue
---------------------------------------------------------------------------------------------------------------

-- Claim (worker):
--   UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $me, locked_at = now(),
--                   lease_until = now() + $lease
--    WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= now() [AND kind = ANY($kinds)]
--                  ORDER BY run_at, id LIMIT $n FOR UPDATE SKIP LOCKED)
--   RETURNING *;
-- Heartbeat: extend lease_until while running. Finish: state done/failed/cancelled, finished_at = now().
-- Retry with backoff / hand back on SIGTERM: state 'queued', run_at = now() + delay, locked_* and lease NULL.
-- Rescue (any process, periodically): running jobs whose lease_until < now() go back to 'queued' (or 'failed'
-- once attempts >= max_attempts); a resumed generate job continues from articles.last_stage_done.
-- Delayed jobs (run_at in the future, e.g. delivery at scheduled_at) wait in the same index; after a claim
-- finds nothing due, a worker arms a timer for min(run_at) of queued jobs.
--
-- NOTIFY is done by trigger (jobs_notify below), not by the app: every job that becomes 'queued' (insert or
-- hand-back) sends pg_notify('inkloop_jobs', kind) at commit. Identical notifications in one transaction are
-- folded by PostgreSQL, so a batch of 50 articles wakes workers once. Workers must still poll on a timer:
-- notifications are a latency hint, never the only trigger.
CREATE TABLE jobs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('generate_article', 'deliver_webhook')),
    article_id   uuid        REFERENCES articles (id) ON DELETE CASCADE,  -- a deleted article takes its jobs along
    payload      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    state        text        NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_by    text,       -- "<hostname>:<pid>" of the claiming process
    locked_at    timestamptz,
    lease_until  timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- A running job always says who holds it and until when, so rescue can never miss one.
    CHECK (state <> 'running' OR (locked_by IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK (kind NOT IN ('generate_article', 'deliver_webhook') OR article_id IS NOT NULL)
);
-- Claiming: only queued rows, in run_at order (the hot path; stays small).
CREATE INDEX jobs_claim_idx ON jobs (run_at, id) WHERE state = 'queued';
-- Rescue of expired leases.
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
-- At most one active job of each kind per article: two concurrent retries, a duplicate create, or "deliver now"
-- racing with the scheduled delivery cannot run the pipeline (or a delivery) twice at once. Enqueue with
--   INSERT ... ON CONFLICT (article_id, kind) WHERE state IN ('queued', 'running') DO NOTHING
-- (or DO UPDATE SET run_at = least(jobs.run_at, EXCLUDED.run_at) to pull a delayed delivery forward).
CREATE UNIQUE INDEX jobs_active_per_article_key ON jobs (article_id, kind) WHERE state IN ('queued', 'running');
-- Purging finished jobs (retention is the app's choice).
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state IN ('done', 'failed', 'cancelled');
CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inkloop_jobs', NEW.kind);
    RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION jobs_notify();
CREATE TRIGGER jobs_notify_requeue AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued' AND OLD.state <> 'queued') EXECUTE FUNCTION jobs_notify();

---------------------------------------------------------------------------------------------------------------
-- Webhook delivery attempts (GET /articles/{id}/deliveries): every attempt, success or not.
---------------------------------------------------------------------------------------------------------------

CREATE TABLE webhook_deliveries (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    article_id     uuid        NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    integration_id uuid        REFERENCES webhook_integrations (id) ON DELETE SET NULL,
    attempt        integer     NOT NULL CHECK (attempt >= 1),  -- posting_attempt_count + 1 at send time; restarts at 1 after /deliver
    url            text        NOT NULL,
    webhook_id     text,       -- the webhook-id header sent
    success        boolean     NOT NULL DEFAULT false,  -- any 2xx
    status_code    integer     CHECK (status_code BETWEEN 100 AND 599),  -- NULL when no HTTP answer
    error          text,       -- 'HTTP 503', 'timeout after 30s', 'connection refused', ...
    duration_ms    integer     CHECK (duration_ms >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_article_idx ON webhook_deliveries (article_id, created_at DESC);
CREATE INDEX webhook_deliveries_integration_idx ON webhook_deliveries (integration_id) WHERE integration_id IS NOT NULL;

---------------------------------------------------------------------------------------------------------------
-- Idempotency keys (Idempotency-Key on POST /articles, /generate, /generate/batch, /campaigns)
---------------------------------------------------------------------------------------------------------------

-- Flow, all in the one transaction (batch) that creates the resources:
--   1. DELETE FROM idempotency_keys WHERE user_id = $u AND key = $k AND expires_at <= now();   -- 24 h passed
--   2. INSERT INTO idempotency_keys (user_id, key, request_hash, endpoint) VALUES (...);        -- no ON CONFLICT
--   3. create the article(s)/campaign, charge, enqueue;
--   4. UPDATE idempotency_keys SET resource_type = ..., resource_ids = ..., response_status = ...,
--      response_body = ..., completed_at = now() WHERE user_id = $u AND key = $k;
-- A concurrent duplicate blocks in step 2 on the primary key until the first transaction ends: if it rolled
-- back (e.g. 402) the duplicate proceeds as a fresh request; if it committed, the duplicate fails with 23505
-- (idempotency_keys_pkey), its whole batch is rolled back (nothing created, nothing charged), and the handler
-- then reads the row: request_hash different -> 409; response_body present -> replay response_status/body;
-- response_body NULL (the app chose to store the response in a later transaction) -> render the resources
-- named by resource_type/resource_ids (committed atomically with the key), or 409 "request in progress".
-- request_hash = SHA-256 over method, path and the canonical body, so reusing a key on another endpoint or with
-- another body is a 409. Purge with DELETE ... WHERE expires_at < now().
CREATE TABLE idempotency_keys (
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    endpoint        text        NOT NULL,   -- e.g. 'POST /articles'
    request_hash    bytea       NOT NULL CHECK (octet_length(request_hash) = 32),
    resource_type   text,       -- 'article' | 'campaign'
    resource_ids    uuid[],
    response_status integer     CHECK (response_status BETWEEN 100 AND 599),
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (user_id, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
