/* Campaigns: create (credit check, optional integration created on the fly), list, get, patch, pause, resume,
 * cancel.
 *
 * Every request that can carry a timezone waits for the process's set of timezone names (db/timezones.h),
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
#include "core/crypto.h"
#include "core/log.h"
#include "http/credits.h"
#include "http/idempotency.h"
#include "http/integrations.h"
#include "db/timezones.h"
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int campaigns_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_campaigns, queries_campaigns_count);
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
    char id[37]; /* the campaign changed, or the one a create inserts */
    char secret[INTEGRATIONS_SECRET_SIZE];
    idem_t idem; /* create only; its statements point into it until db_batch returns */
} campaign_op_t;

static void op_free(campaign_op_t *op)
{
    idem_free(&op->idem);
    v_free(&op->v);
    free(op);
}

/* Renders a replayed create whose first response is not stored yet: the campaign as it is now. */
static void on_replay_campaign(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "replaying a campaign create"))
        return;
    if (PQntuples(r[0].res) != 1)
        http_reply_error(req, 404, "Campaign not found");
    else
        reply_campaign(req, 201, r[0].res, NULL);
}

static void render_created_campaign(http_req_t *req, const char *type, char **ids, size_t nids)
{
    /* The endpoint is part of the request hash, so a matching key always names one campaign; anything else
     * is a row this handler did not write. */
    if (nids != 1 || type == NULL || strcmp(type, "campaign") != 0) {
        http_reply_error(req, 409, "Idempotency-Key reused with a different request");
        return;
    }
    const char *params[] = {ids[0], req->user_id};
    if (db_query(req->app->db, "campaign_get", 2, params, on_replay_campaign, req) == NULL)
        kit_db_busy(req);
}

static void on_created(const db_result_t *r, size_t n, void *data)
{
    campaign_op_t *op = data;
    http_req_t *req = op->req;
    const db_result_t *f = batch_failure(r, n);
    /* The insert is the batch's last statement. */
    const PGresult *res = f == NULL ? r[n - 1].res : NULL;
    if (f != NULL) {
        /* A duplicate's batch waited for the first one and was rolled back: answer what the first got. */
        if (idem_is_duplicate(&op->idem, r, n, 0))
            idem_replay(req, &op->idem, render_created_campaign);
        else
            reply_failure(req, f, "creating a campaign");
    } else if (PQntuples(res) != 1) {
        /* campaign_integration_require refuses a foreign integration first; this stays as the insert's own
         * guard (it selects nothing for one). */
        http_reply_error(req, 404, "Integration not found");
    } else {
        const char *next = db_value(res, 0, "next_run_at");
        log_info("creating a campaign", "campaign %s of user %s, next slot %s", op->id, req->user_id,
                 next != NULL ? next : "none");
        buf_t body = BUF_INIT;
        json_writer_t w;
        jw_init(&w, &body);
        write_campaign(&w, res, 0);
        idem_reply(req, &op->idem, 201, &body);
        buf_free(&body);
    }
    op_free(op);
}

static void create_run(campaign_op_t *op)
{
    http_req_t *req = op->req;
    campaign_body_t *b = &op->b;
    /* The id is chosen here so the Idempotency-Key row, claimed first in the same transaction, names the
     * campaign before it exists; the body is hashed only now that it is known to be valid. */
    crypto_uuid4(op->id);
    idem_hash(&op->idem, op->v.root);
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
                            secret,
                            op->id};
    const char *integ[] = {req->user_id, b->webhook_integration_id};
    db_stmt_t stmts[5];
    size_t k = 0;
    char *ids[] = {op->id};
    /* Claiming the key must come first: a duplicate then blocks before it checks or writes anything. */
    k += idem_statements(&op->idem, req->user_id, "campaign", ids, 1, stmts + k);
    stmts[k++] = (db_stmt_t){"campaign_credits", NULL, 2, check};
    if (b->webhook_integration_id[0] != '\0')
        stmts[k++] = (db_stmt_t){"campaign_integration_require", NULL, 2, integ};
    stmts[k++] = (db_stmt_t){"campaign_insert", NULL, 17, insert};
    if (db_batch(req->app->db, stmts, k, on_created, op) == NULL) {
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
    campaign_body_parse(&op->v, op->kind == OP_PATCH, db_timezones_valid, &op->b);
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
    /* A malformed key is refused (422) before the body is looked at, as for POST /articles. */
    if (idem_init(&op->idem, req, "POST /campaigns") != 0 || v_parse_body(&op->v, req, 0) != 0) {
        op_free(op);
        return;
    }
    db_timezones_when_ready(req->app->db, on_timezones, op);
}

void campaigns_update(http_req_t *req)
{
    campaign_op_t *op = op_new(req, OP_PATCH);
    if (kit_path_uuid(req, 0, "campaign_id", op->id) != 0 || v_parse_body(&op->v, req, 1) != 0) {
        op_free(op);
        return;
    }
    db_timezones_when_ready(req->app->db, on_timezones, op);
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
    kit_reply_rows(req, r[0].res, write_campaign);
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
