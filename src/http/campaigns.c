/* Campaigns: create (credit check, optional integration created on the fly), list, get, patch, pause, resume,
 * cancel.
 *
 * Every request that can carry a timezone waits for the process's set of timezone names (http/timezones.c),
 * so the whole body is validated at once and all problems come back in one 422. Changes run as one batch that
 * first locks the campaign with campaign_lock_for_change (sql/0003_campaigns.sql), which also refuses what
 * the stored row makes invalid (status of a finished campaign, end_date before start_date, someone else's
 * integration); the batch then updates, recomputes the next slot when the schedule changed, and reads the row
 * back, so a reply always shows what was committed.
 *
 * next_slot_at (the scheduler's cursor) and next_run_at (what the API shows) are both "the first slot at or
 * after now" for an active campaign and NULL otherwise; an active campaign with no slot left (end_date
 * passed) is completed on the spot (API.md section 8's stop rule), since no tick would ever visit it again.
 */
#include "http/campaigns.h"
#include "app.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/credits.h"
#include "http/integrations.h"
#include "http/timezones.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a response shows of a campaign, from campaigns c left-joined to its integration w (the URL shown
 * is the integration's, where delivery really goes, else the one stored at creation). */
#define CAMPAIGN_COLS                                                                                        \
    "c.id, c.user_id, c.name, c.description, c.topic, c.category, c.articles_per_day,"                       \
    " array_to_json(c.posting_times)::text AS posting_times, c.timezone,"                                    \
    " to_char(c.start_date, 'YYYY-MM-DD') AS start_date, to_char(c.end_date, 'YYYY-MM-DD') AS end_date,"     \
    " c.total_articles, c.target_length, c.source_count, c.status, c.pause_reason, c.articles_generated,"    \
    " c.articles_posted, c.credits_used, coalesce(w.webhook_url, c.webhook_url) AS webhook_url,"             \
    " c.webhook_integration_id, c.created_at, c.updated_at, c.last_run_at, c.next_run_at, c.last_error"

static const struct {
    const char *name, *sql;
} statements[] = {
    /* Campaigns are charged per article later; creating one only needs a day's worth of credits now. Raises
     * IL402 with the contract's message. */
    {"campaign_credits", "SELECT credits_require($1::uuid, $2::int)"},
    /* One statement: the integration for a bare webhook_url (or the caller's own integration, which must
     * exist: no row comes back otherwise and the handler answers 404), the first slot, the campaign. */
    {"campaign_insert",
     "WITH new_integ AS ("
     "  INSERT INTO webhook_integrations (user_id, name, webhook_url, webhook_secret)"
     "  SELECT $1::uuid, left($2::text || ' webhook', 200), $15::text, $16::text"
     "   WHERE $14::uuid IS NULL AND $15::text IS NOT NULL"
     "  RETURNING id, webhook_url),"
     " own_integ AS (SELECT id, webhook_url FROM webhook_integrations WHERE id = $14::uuid AND user_id = "
     "$1::uuid),"
     " w AS (SELECT id, webhook_url FROM new_integ UNION ALL SELECT id, webhook_url FROM own_integ),"
     " slot AS (SELECT campaign_next_slot($7::text[], $6::int, $8::text, $9::date, $10::date, now()) AS at),"
     " c AS ("
     "  INSERT INTO campaigns (user_id, name, description, topic, category, articles_per_day, posting_times,"
     "                         timezone, start_date, end_date, total_articles, target_length, source_count,"
     "                         webhook_url, webhook_integration_id, status, next_slot_at, next_run_at)"
     "  SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::int, $7::text[], $8::text, $9::date,"
     "         $10::date, $11::int, $12::int, $13::int, (SELECT webhook_url FROM new_integ), (SELECT id FROM "
     "w),"
     "         CASE WHEN slot.at IS NULL THEN 'completed' ELSE 'active' END, slot.at, slot.at"
     "    FROM slot"
     "   WHERE $14::uuid IS NULL OR EXISTS (SELECT 1 FROM own_integ)"
     "  RETURNING *)"
     " SELECT " CAMPAIGN_COLS " FROM c LEFT JOIN w ON w.id = c.webhook_integration_id"},
    {"campaign_list", "SELECT " CAMPAIGN_COLS
                      " FROM campaigns c LEFT JOIN webhook_integrations w ON w.id = c.webhook_integration_id"
                      " WHERE c.user_id = $1 ORDER BY c.created_at DESC, c.id DESC OFFSET $2 LIMIT $3"},
    {"campaign_get", "SELECT " CAMPAIGN_COLS
                     " FROM campaigns c LEFT JOIN webhook_integrations w ON w.id = c.webhook_integration_id"
                     " WHERE c.id = $1 AND c.user_id = $2"},
    /* First in every change batch: locks the row, raises P0002 "Campaign not found" / "Integration not
     * found", IL400 for a status change of a finished campaign, IL422 for end_date before start_date. */
    {"campaign_lock", "SELECT campaign_lock_for_change($1::uuid, $2::uuid, $3::text, $4::date, $5::uuid)"},
    /* NULL parameters keep the stored value. Any status the user sets clears pause_reason: resuming ends an
     * automatic pause, and a pause by hand has no reason to show. */
    {"campaign_patch",
     "UPDATE campaigns SET name = coalesce($3::text, name), description = coalesce($4::text, description),"
     "       articles_per_day = coalesce($5::int, articles_per_day),"
     "       posting_times = coalesce($6::text[], posting_times), end_date = coalesce($7::date, end_date),"
     "       timezone = coalesce($8::text, timezone),"
     "       webhook_integration_id = coalesce($9::uuid, webhook_integration_id),"
     "       status = coalesce($10::text, status),"
     "       pause_reason = CASE WHEN $10::text IS NULL THEN pause_reason END"
     " WHERE id = $1::uuid AND user_id = $2::uuid"},
    /* After a schedule or status change: the cursor moves to the first slot from now (slots missed while
     * paused are skipped, never burst out). Moving it back over slots the scheduler already handled is
     * harmless: campaign_slots remembers them. */
    {"campaign_reschedule",
     "UPDATE campaigns c SET next_slot_at = n.at, next_run_at = n.at,"
     "       status = CASE WHEN c.status = 'active' AND n.at IS NULL THEN 'completed' ELSE c.status END"
     "  FROM (SELECT CASE WHEN x.status = 'active' THEN campaign_next_slot(x, now()) END AS at"
     "          FROM campaigns x WHERE x.id = $1::uuid) n"
     " WHERE c.id = $1::uuid AND c.user_id = $2::uuid"},
};

int campaigns_prepare(db_pool_t *pool)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
        if (db_pool_prepare(pool, statements[i].name, statements[i].sql) != 0)
            return -1;
    return 0;
}

/* ---- validation (pure) ---- */

int campaign_time_valid(const char *s)
{
    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return 0;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    return h <= 23 && m <= 59;
}

/* posting_times: a list of 1-24 distinct "HH:MM". Problems are reported on the field with the index in the
 * message, since loc has room for the field name only. */
static void parse_times(validator_t *v, int required, campaign_body_t *out)
{
    yajl_val m = v_raw(v, "posting_times");
    char msg[160];
    if (m == NULL) {
        if (required)
            v_error(v, "posting_times", "Field required", "missing");
        return;
    }
    if (!YAJL_IS_ARRAY(m)) {
        v_error(v, "posting_times", "Input should be a valid list", "list_type");
        return;
    }
    size_t n = m->u.array.len;
    if (n == 0) {
        v_error(v, "posting_times", "List should have at least 1 item after validation, not 0", "too_short");
        return;
    }
    if (n > CAMPAIGN_MAX_TIMES) {
        snprintf(msg, sizeof(msg), "List should have at most %d items after validation, not %zu",
                 CAMPAIGN_MAX_TIMES, n);
        v_error(v, "posting_times", msg, "too_long");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val t = m->u.array.values[i];
        if (!YAJL_IS_STRING(t)) {
            snprintf(msg, sizeof(msg), "Value error, posting_times[%zu] should be a string \"HH:MM\"", i);
            v_error(v, "posting_times", msg, "value_error");
            return;
        }
        if (!campaign_time_valid(t->u.string)) {
            snprintf(msg, sizeof(msg),
                     "Value error, posting_times[%zu] '%.16s' is not a valid time (HH:MM, 00:00-23:59)", i,
                     t->u.string);
            v_error(v, "posting_times", msg, "value_error");
            return;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(out->times[j], t->u.string) == 0) {
                snprintf(msg, sizeof(msg),
                         "Value error, posting_times must be distinct: '%s' appears more than once",
                         out->times[j]);
                v_error(v, "posting_times", msg, "value_error");
                return;
            }
        }
        memcpy(out->times[i], t->u.string, 6);
    }
    out->ntimes = n;
    char *p = out->times_sql;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        memcpy(p, out->times[i], 5);
        p += 5;
    }
    *p++ = '}';
    *p = '\0';
}

/* A "YYYY-MM-DD" member into out ("" when absent). */
static void parse_date(validator_t *v, const char *field, int required, char out[11])
{
    out[0] = '\0';
    const char *s = v_string(v, field, required, 0, 0, 1);
    if (s == NULL) {
        /* v_string recorded a wrong type already; only a missing required member is left to report. */
        return;
    }
    if (kit_parse_date(s) != 0) {
        v_error(v, field, "Input should be a valid date in the format YYYY-MM-DD", "date_parsing");
        return;
    }
    memcpy(out, s, 11);
}

int campaign_body_parse(validator_t *v, int patch, campaign_tz_valid_cb tz_valid, campaign_body_t *out)
{
    memset(out, 0, sizeof(*out));
    out->name = v_string(v, "name", !patch, 1, 200, 0);
    out->description = v_string(v, "description", 0, 0, 5000, 0);
    out->has_articles_per_day = v_int(v, "articles_per_day", !patch, 1, 10, 0, &out->articles_per_day) == 1;
    parse_times(v, !patch, out);
    parse_date(v, "end_date", 0, out->end_date);

    char msg[128];
    out->timezone = v_string(v, "timezone", 0, 1, 64, 1);
    if (out->timezone != NULL && tz_valid != NULL && !tz_valid(out->timezone)) {
        snprintf(msg, sizeof(msg),
                 "Value error, Unknown timezone: %s (use an IANA name such as America/New_York)",
                 out->timezone);
        v_error(v, "timezone", msg, "value_error");
        out->timezone = NULL;
    }
    v_uuid(v, "webhook_integration_id", 0, out->webhook_integration_id);

    if (patch) {
        out->status = v_string(v, "status", 0, 0, 0, 0);
        if (out->status != NULL && strcmp(out->status, "active") != 0 && strcmp(out->status, "paused") != 0) {
            v_error(v, "status", "Input should be 'active' or 'paused'", "literal_error");
            out->status = NULL;
        }
        return v->errors;
    }

    /* A bad timezone was recorded above and fails the request; otherwise absent, null or "" mean UTC. */
    if (out->timezone == NULL)
        out->timezone = "UTC";
    out->topic = v_string(v, "topic", 1, 1, 2000, 0);
    out->category = v_string(v, "category", 0, 1, 100, 1);
    if (out->category == NULL)
        out->category = "General";
    parse_date(v, "start_date", 1, out->start_date);
    if (out->start_date[0] != '\0' && out->end_date[0] != '\0' && strcmp(out->end_date, out->start_date) < 0)
        v_error(v, "end_date", "Value error, end_date must be on or after start_date", "value_error");
    out->has_total_articles = v_int(v, "total_articles", 0, 1, 1000000, 0, &out->total_articles) == 1;
    v_int(v, "target_length", 0, 300, 5000, 1500, &out->target_length);
    v_int(v, "source_count", 0, 1, 10, 5, &out->source_count);
    out->webhook_url = integrations_v_webhook_url(v, "webhook_url", 0);
    out->webhook_secret = v_string(v, "webhook_secret", 0, 0, 500, 1);
    return v->errors;
}

/* ---- replies ---- */

static void write_campaign(json_writer_t *w, const PGresult *res, int row)
{
    static const char *const strings[] = {"id", "user_id", "name", "description", "topic", "category"};
    jw_object_begin(w);
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        jw_key(w, strings[i]);
        jw_string(w, db_value(res, row, strings[i]));
    }
    jw_key(w, "articles_per_day");
    jw_int(w, db_int(res, row, "articles_per_day"));
    /* Stored as text[] of validated "HH:MM" strings; PostgreSQL renders the JSON array. */
    jw_key(w, "posting_times");
    const char *times = db_value(res, row, "posting_times");
    if (times != NULL)
        jw_raw(w, times, strlen(times));
    else
        jw_null(w);
    jw_key(w, "timezone");
    jw_string(w, db_value(res, row, "timezone"));
    jw_key(w, "start_date");
    jw_string(w, db_value(res, row, "start_date"));
    jw_key(w, "end_date");
    jw_string(w, db_value(res, row, "end_date"));
    jw_key(w, "total_articles");
    if (db_value(res, row, "total_articles") != NULL)
        jw_int(w, db_int(res, row, "total_articles"));
    else
        jw_null(w);
    static const char *const ints[] = {"target_length", "source_count"};
    for (size_t i = 0; i < 2; i++) {
        jw_key(w, ints[i]);
        jw_int(w, db_int(res, row, ints[i]));
    }
    jw_key(w, "status");
    jw_string(w, db_value(res, row, "status"));
    jw_key(w, "pause_reason");
    jw_string(w, db_value(res, row, "pause_reason"));
    static const char *const counters[] = {"articles_generated", "articles_posted", "credits_used"};
    for (size_t i = 0; i < 3; i++) {
        jw_key(w, counters[i]);
        jw_int(w, db_int(res, row, counters[i]));
    }
    jw_key(w, "webhook_url");
    jw_string(w, db_value(res, row, "webhook_url"));
    jw_key(w, "webhook_integration_id");
    jw_string(w, db_value(res, row, "webhook_integration_id"));
    static const char *const stamps[] = {"created_at", "updated_at", "last_run_at", "next_run_at"};
    for (size_t i = 0; i < 4; i++) {
        jw_key(w, stamps[i]);
        kit_jw_ts(w, db_value(res, row, stamps[i]));
    }
    jw_key(w, "last_error");
    jw_string(w, db_value(res, row, "last_error"));
    jw_object_end(w);
}

/* Replies with row 0 of res as a Campaign, wrapped as {"success", "message", "campaign"} when message is set.
 */
static void reply_campaign(http_req_t *req, int status, const PGresult *res, const char *message)
{
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    if (message != NULL) {
        jw_object_begin(&w);
        jw_key(&w, "success");
        jw_bool(&w, 1);
        jw_key(&w, "message");
        jw_string(&w, message);
        jw_key(&w, "campaign");
    }
    write_campaign(&w, res, 0);
    if (message != NULL)
        jw_object_end(&w);
    http_reply_json(req, status, &body);
    buf_free(&body);
}

/* The statement that failed a batch (later ones only say "aborted"), or NULL when it succeeded. */
static const db_result_t *batch_failure(const db_result_t *r, size_t n)
{
    if (n == 0 || r[n - 1].err == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (r[i].err != NULL)
            return &r[i];
    return &r[n - 1];
}

/* The first line of a server message, which our SQL functions write as the API's own text. */
static void first_line(const char *err, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", err);
    out[strcspn(out, "\n")] = '\0';
}

/* Answers a failed batch: the refusals our SQL raises on purpose map to their status, the rest to 500/503. */
static void reply_failure(http_req_t *req, const db_result_t *f, const char *action)
{
    char detail[256];
    if (credits_is_insufficient(f)) {
        credits_reply_insufficient(req, f);
    } else if (strcmp(f->sqlstate, "P0002") == 0) {
        first_line(f->err, detail, sizeof(detail));
        http_reply_error(req, 404, detail);
    } else if (strcmp(f->sqlstate, "IL400") == 0) {
        first_line(f->err, detail, sizeof(detail));
        http_reply_error(req, 400, detail);
    } else if (strcmp(f->sqlstate, "IL422") == 0) {
        char msg[300];
        first_line(f->err, detail, sizeof(detail));
        snprintf(msg, sizeof(msg), "Value error, %s", detail);
        http_reply_invalid(req, "body", "end_date", msg, "value_error");
    } else {
        kit_db_failed(req, f, action);
    }
}

/* ---- the operations ---- */

typedef enum { OP_CREATE, OP_PATCH, OP_PAUSE, OP_RESUME, OP_CANCEL } op_kind_t;

/* One request's state across its asynchronous steps (timezone names, then the batch). The body's strings
 * point into v's parse tree, so v lives as long as the op. */
typedef struct st_campaign_op_t {
    http_req_t *req;
    op_kind_t kind;
    validator_t v;
    campaign_body_t b;
    char id[37];
    char secret[INTEGRATIONS_SECRET_SIZE];
} campaign_op_t;

static void op_free(campaign_op_t *op)
{
    v_free(&op->v);
    free(op);
}

static void on_created(const db_result_t *r, size_t n, void *data)
{
    campaign_op_t *op = data;
    http_req_t *req = op->req;
    const db_result_t *f = batch_failure(r, n);
    if (f != NULL) {
        reply_failure(req, f, "creating a campaign");
    } else if (PQntuples(r[1].res) != 1) {
        /* The insert selects nothing when webhook_integration_id is not one of the caller's integrations. */
        http_reply_error(req, 404, "Integration not found");
    } else {
        log_info("creating a campaign", "campaign %s of user %s, next slot %s", db_value(r[1].res, 0, "id"),
                 req->user_id,
                 db_value(r[1].res, 0, "next_run_at") ? db_value(r[1].res, 0, "next_run_at") : "none");
        reply_campaign(req, 201, r[1].res, NULL);
    }
    op_free(op);
}

static void create_run(campaign_op_t *op)
{
    http_req_t *req = op->req;
    campaign_body_t *b = &op->b;
    /* IDEMPOTENCY: POST /campaigns honours Idempotency-Key (API.md section 2). src/http/idempotency.c is
     * being written in parallel; when it lands, wire it here: its statements go around this batch (key insert
     * first, response stored last, in the same transaction) and on_created hands it the 201 body. */
    char apd[8], total[16], length[16], sources[8];
    snprintf(apd, sizeof(apd), "%lld", (long long)b->articles_per_day);
    snprintf(total, sizeof(total), "%lld", (long long)b->total_articles);
    snprintf(length, sizeof(length), "%lld", (long long)b->target_length);
    snprintf(sources, sizeof(sources), "%lld", (long long)b->source_count);
    const char *secret = b->webhook_secret;
    if (secret == NULL && b->webhook_url != NULL && b->webhook_integration_id[0] == '\0') {
        integrations_new_secret(op->secret);
        secret = op->secret;
    }
    const char *check[] = {req->user_id, apd};
    const char *insert[] = {req->user_id,
                            b->name,
                            b->description,
                            b->topic,
                            b->category,
                            apd,
                            b->times_sql,
                            b->timezone,
                            b->start_date,
                            b->end_date[0] != '\0' ? b->end_date : NULL,
                            b->has_total_articles ? total : NULL,
                            length,
                            sources,
                            b->webhook_integration_id[0] != '\0' ? b->webhook_integration_id : NULL,
                            b->webhook_url,
                            secret};
    const db_stmt_t stmts[] = {
        {"campaign_credits", NULL, 2, check},
        {"campaign_insert", NULL, 16, insert},
    };
    if (db_batch(req->app->db, stmts, 2, on_created, op) == NULL) {
        kit_db_busy(req);
        op_free(op);
    }
}

static void on_changed(const db_result_t *r, size_t n, void *data)
{
    campaign_op_t *op = data;
    http_req_t *req = op->req;
    const db_result_t *f = batch_failure(r, n);
    if (f != NULL) {
        reply_failure(req, f, "changing a campaign");
    } else if (PQntuples(r[n - 1].res) != 1) {
        /* The lock would have raised; a row gone between statements of one transaction cannot happen. */
        http_reply_error(req, 404, "Campaign not found");
    } else {
        switch (op->kind) {
        case OP_PAUSE:
            reply_campaign(req, 200, r[n - 1].res, "Campaign paused");
            break;
        case OP_RESUME:
            reply_campaign(req, 200, r[n - 1].res, "Campaign resumed");
            break;
        case OP_CANCEL: {
            buf_t body = BUF_INIT;
            buf_puts(&body, "{\"success\":true,\"message\":\"Campaign cancelled\"}");
            http_reply_json(req, 200, &body);
            buf_free(&body);
            break;
        }
        default:
            reply_campaign(req, 200, r[n - 1].res, NULL);
            break;
        }
    }
    op_free(op);
}

/* lock, patch, reschedule (when the schedule or status may have changed), read back: one transaction. */
static void change_run(campaign_op_t *op)
{
    http_req_t *req = op->req;
    campaign_body_t *b = &op->b;
    static const char *const op_status[] = {
        [OP_PAUSE] = "paused", [OP_RESUME] = "active", [OP_CANCEL] = "cancelled"};
    const char *status = op->kind == OP_PATCH ? b->status : op_status[op->kind];
    const char *end_date = b->end_date[0] != '\0' ? b->end_date : NULL;
    const char *integ = b->webhook_integration_id[0] != '\0' ? b->webhook_integration_id : NULL;
    char apd[8];
    snprintf(apd, sizeof(apd), "%lld", (long long)b->articles_per_day);

    /* Cancelling is allowed from any status, so it does not ask the lock to judge a status change. */
    const char *lock[] = {op->id, req->user_id, op->kind == OP_CANCEL ? NULL : status, end_date, integ};
    const char *patch[] = {op->id,
                           req->user_id,
                           b->name,
                           b->description,
                           b->has_articles_per_day ? apd : NULL,
                           b->ntimes > 0 ? b->times_sql : NULL,
                           end_date,
                           b->timezone,
                           integ,
                           status};
    const char *key[] = {op->id, req->user_id};
    db_stmt_t stmts[4];
    size_t n = 0;
    stmts[n++] = (db_stmt_t){"campaign_lock", NULL, 5, lock};
    stmts[n++] = (db_stmt_t){"campaign_patch", NULL, 10, patch};
    if (status != NULL || b->has_articles_per_day || b->ntimes > 0 || end_date != NULL || b->timezone != NULL)
        stmts[n++] = (db_stmt_t){"campaign_reschedule", NULL, 2, key};
    stmts[n++] = (db_stmt_t){"campaign_get", NULL, 2, key};
    if (db_batch(req->app->db, stmts, n, on_changed, op) == NULL) {
        kit_db_busy(req);
        op_free(op);
    }
}

/* The timezone names are loaded: validate the body with them, then run the operation. */
static void on_timezones(void *data, const db_result_t *failure)
{
    campaign_op_t *op = data;
    if (failure != NULL) {
        kit_db_failed(op->req, failure, "loading timezone names");
        op_free(op);
        return;
    }
    campaign_body_parse(&op->v, op->kind == OP_PATCH, timezones_valid, &op->b);
    if (v_finish(&op->v) != 0) {
        op_free(op);
        return;
    }
    if (op->kind == OP_CREATE)
        create_run(op);
    else
        change_run(op);
}

static campaign_op_t *op_new(http_req_t *req, op_kind_t kind)
{
    campaign_op_t *op = xcalloc(1, sizeof(*op));
    op->req = req;
    op->kind = kind;
    return op;
}

void campaigns_create(http_req_t *req)
{
    campaign_op_t *op = op_new(req, OP_CREATE);
    if (v_parse_body(&op->v, req, 0) != 0) {
        op_free(op);
        return;
    }
    timezones_when_ready(req->app, on_timezones, op);
}

void campaigns_update(http_req_t *req)
{
    campaign_op_t *op = op_new(req, OP_PATCH);
    if (kit_path_uuid(req, 0, "campaign_id", op->id) != 0 || v_parse_body(&op->v, req, 1) != 0) {
        op_free(op);
        return;
    }
    timezones_when_ready(req->app, on_timezones, op);
}

/* pause, resume and cancel take no body (a POST without one is valid; one sent anyway is ignored). */
static void status_change(http_req_t *req, op_kind_t kind)
{
    campaign_op_t *op = op_new(req, kind);
    if (kit_path_uuid(req, 0, "campaign_id", op->id) != 0) {
        op_free(op);
        return;
    }
    change_run(op);
}

void campaigns_pause(http_req_t *req)
{
    status_change(req, OP_PAUSE);
}

void campaigns_resume(http_req_t *req)
{
    status_change(req, OP_RESUME);
}

void campaigns_delete(http_req_t *req)
{
    status_change(req, OP_CANCEL);
}

static void on_list(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing campaigns"))
        return;
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_array_begin(&w);
    for (int i = 0; i < PQntuples(r[0].res); i++)
        write_campaign(&w, r[0].res, i);
    jw_array_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void campaigns_list(http_req_t *req)
{
    int64_t skip, limit;
    if (kit_paging(req, &skip, &limit) != 0)
        return;
    char s[24], l[24];
    snprintf(s, sizeof(s), "%lld", (long long)skip);
    snprintf(l, sizeof(l), "%lld", (long long)limit);
    const char *params[] = {req->user_id, s, l};
    if (db_query(req->app->db, "campaign_list", 3, params, on_list, req) == NULL)
        kit_db_busy(req);
}

static void on_get(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading a campaign"))
        return;
    if (PQntuples(r[0].res) != 1)
        http_reply_error(req, 404, "Campaign not found");
    else
        reply_campaign(req, 200, r[0].res, NULL);
}

void campaigns_get(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "campaign_id", id) != 0)
        return;
    const char *params[] = {id, req->user_id};
    if (db_query(req->app->db, "campaign_get", 2, params, on_get, req) == NULL)
        kit_db_busy(req);
}
