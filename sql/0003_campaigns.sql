-- 0003_campaigns: the campaign slot rule in one place, and the checks the campaign handlers run inside their
-- batches (src/http/campaigns.c).
--
-- The slot rule (API.md section 8) is written once, as campaign_slots_between; everything else that needs a
-- slot time (next_run_at at create/patch/resume here, the scheduler's cursor later) goes through it, so the API
-- and the scheduler cannot disagree about when a campaign posts.

-- The slots of a campaign in [p_from, p_to), in time order. Slot i (0 .. p_per_day - 1) of local day D
-- (p_start .. p_end, inclusive; p_end NULL = no end) is at p_times[i mod len] on D in p_tz, converted with
-- (D + time) AT TIME ZONE p_tz, which PostgreSQL resolves with the zone's rules for that very day:
-- * a time that does not exist on a spring-forward day is read with the offset in force before the change
--   (02:30 on 2026-03-08 in America/New_York is 03:30 EDT, 07:30Z): one slot, just later;
-- * a time that occurs twice on an autumn day maps to one instant (PostgreSQL takes the standard-time one):
--   one slot, not two.
-- Two entries can land on the same instant (articles_per_day > len(posting_times), or 02:30 and 03:30 on a
-- spring-forward day); they come back as separate rows with their own slot_index, and the scheduler decides
-- (campaign_slots is keyed by (campaign_id, slot_at)).
--
-- Only the local days that can hold a slot in the window are generated: from the local date of p_from minus
-- one (a zone's offset can put the previous local day's late slots after p_from in UTC terms) to the local
-- date of p_to plus one, clipped to [p_start, p_end]. So the cost follows the window, not the campaign's age.
CREATE FUNCTION campaign_slots_between(p_times text[], p_per_day integer, p_tz text, p_start date, p_end date,
                                       p_from timestamptz, p_to timestamptz)
RETURNS TABLE (slot_at timestamptz, local_day date, slot_index integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH bounds AS (
        SELECT greatest(p_start, (p_from AT TIME ZONE p_tz)::date - 1) AS first_day,
               least(p_end, (p_to AT TIME ZONE p_tz)::date + 1) AS last_day
    )
    SELECT s.slot_at, s.day, s.i
      FROM bounds b
     CROSS JOIN LATERAL generate_series(0, b.last_day - b.first_day) AS k
     CROSS JOIN LATERAL (
            SELECT b.first_day + k AS day, i,
                   ((b.first_day + k) + p_times[1 + i % cardinality(p_times)]::time) AT TIME ZONE p_tz AS slot_at
              FROM generate_series(0, p_per_day - 1) AS i) s
     WHERE s.slot_at >= p_from AND s.slot_at < p_to
     ORDER BY s.slot_at, s.day, s.i
$$;

-- The first slot at or after p_after, or NULL when none is left (end_date passed). A day always has at least
-- one slot, so the first slot at or after p_after lies within a few local days of it (or on start_date when
-- that is later): the window below is wide enough for any zone offset or transition.
CREATE FUNCTION campaign_next_slot(p_times text[], p_per_day integer, p_tz text, p_start date, p_end date,
                                   p_after timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT min(s.slot_at)
      FROM campaign_slots_between(
               p_times, p_per_day, p_tz, p_start, p_end, p_after,
               greatest(p_after, (p_start + time '00:00') AT TIME ZONE p_tz) + interval '3 days') AS s
$$;

-- The same for a stored campaign: campaign_next_slot(c, now()) with c a campaigns row. The scheduler advances
-- its cursor past a handled slot S with campaign_next_slot(c, S + interval '1 microsecond').
CREATE FUNCTION campaign_next_slot(c campaigns, p_after timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT campaign_next_slot(c.posting_times, c.articles_per_day, c.timezone, c.start_date, c.end_date, p_after)
$$;

-- A timezone the API accepts: a name PostgreSQL lists in pg_timezone_names (IANA names such as
-- America/New_York, exact case), unlike AT TIME ZONE, which also takes POSIX strings ('UTC+3', 'EST5EDT,M3')
-- and any case. Listing the names reads the zone directory (tens of milliseconds), so the API loads the list
-- once per process (src/http/timezones.c) rather than calling this per request; it is here for SQL users and
-- tests.
CREATE FUNCTION timezone_name_valid(p_tz text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_tz)
$$;

-- Locks a campaign of p_user for a change in the same transaction and refuses what the row makes invalid.
-- Raises no_data_found (P0002) 'Campaign not found' when the campaign is not the user's (unknown and someone
-- else's look the same) and 'Integration not found' when p_integration is given and not one of the user's;
-- IL400 when p_status would move a cancelled or completed campaign; IL422 when p_end_date is before the
-- campaign's start_date. The messages are the API's own text. Returns the current status.
CREATE FUNCTION campaign_lock_for_change(p_id uuid, p_user uuid, p_status text, p_end_date date,
                                         p_integration uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_start date;
BEGIN
    SELECT status, start_date INTO v_status, v_start FROM campaigns WHERE id = p_id AND user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Campaign not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF p_integration IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM webhook_integrations WHERE id = p_integration AND user_id = p_user) THEN
        RAISE EXCEPTION 'Integration not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF p_status IS NOT NULL AND v_status IN ('cancelled', 'completed') AND p_status <> v_status THEN
        RAISE EXCEPTION 'Cannot % a % campaign',
            CASE p_status WHEN 'paused' THEN 'pause' WHEN 'active' THEN 'resume' ELSE 'change the status of' END,
            v_status
            USING ERRCODE = 'IL400';
    END IF;
    IF p_end_date IS NOT NULL AND p_end_date < v_start THEN
        RAISE EXCEPTION 'end_date must be on or after start_date (%)', v_start USING ERRCODE = 'IL422';
    END IF;
    RETURN v_status;
END;
$$;
