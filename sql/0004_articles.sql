-- 0004_articles: helpers for the article, title and batch handlers (src/http/articles.c, titles.c).

-- Raises an error with an application SQLSTATE and message from plain SQL, so one statement of a batch can
-- refuse ("Integration not found", "Can only retry failed articles") and abort the whole transaction. The
-- handlers map SQLSTATE 'IL' || <HTTP status> to that status with the message as detail (IL402 is the same
-- convention credits_charge uses). Returns NULL when it returns at all (never), so it fits in CASE branches.
CREATE FUNCTION inkloop_raise(p_sqlstate text, p_message text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_sqlstate, MESSAGE = p_message;
END;
$$;

-- credits_require of 0001 locked the user row FOR UPDATE. That lock conflicts with the FOR KEY SHARE lock every
-- foreign-key check on users takes (inserting an idempotency key, an article), so two transactions of one user
-- that each inserted such a row first and then called credits_require (or credits_charge) deadlocked. FOR NO
-- KEY UPDATE is what credits_charge's UPDATE takes anyway: it still serializes concurrent spending of one
-- balance, and does not conflict with foreign-key checks.
CREATE OR REPLACE FUNCTION credits_require(p_user uuid, p_needed integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_have integer;
BEGIN
    SELECT credits INTO v_have FROM users WHERE id = p_user FOR NO KEY UPDATE;
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
