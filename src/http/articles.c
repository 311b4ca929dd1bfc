/* Articles: the resource handlers (see articles.h). Their statements are sql/queries/articles.sql. Every
 * change is one atomic batch whose statements refuse with an application SQLSTATE (inkloop_raise, IL402 from
 * the credit functions), so the checks and the writes see the same rows and a refusal rolls everything back.
 */
#include "http/articles.h"
#include "pipeline/markdown.h"
#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/credits.h"
#include "http/idempotency.h"
#include "http/timezones.h"
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int articles_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_articles, queries_articles_count);
}

/* ---- the Article serializer ---- */

static void jw_col_string(json_writer_t *w, const PGresult *res, int row, const char *col)
{
    jw_key(w, col);
    jw_string(w, db_value(res, row, col));
}

static void jw_col_int(json_writer_t *w, const PGresult *res, int row, const char *col)
{
    jw_key(w, col);
    if (db_value(res, row, col) == NULL)
        jw_null(w);
    else
        jw_int(w, db_int(res, row, col));
}

static void jw_col_ts(json_writer_t *w, const PGresult *res, int row, const char *col)
{
    jw_key(w, col);
    kit_jw_ts(w, db_value(res, row, col));
}

static void jw_col_json(json_writer_t *w, const PGresult *res, int row, const char *col)
{
    const char *v = db_value(res, row, col);
    jw_key(w, col);
    if (v == NULL)
        jw_null(w);
    else
        jw_raw(w, v, strlen(v));
}

void articles_write_json(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_col_string(w, res, row, "id");
    jw_col_string(w, res, row, "topic");
    jw_col_string(w, res, row, "title");
    jw_col_string(w, res, row, "raw_query");
    jw_col_string(w, res, row, "status");
    jw_col_ts(w, res, row, "scheduled_at");
    jw_col_string(w, res, row, "timezone");
    jw_col_ts(w, res, row, "created_at");
    jw_col_ts(w, res, row, "updated_at");
    jw_col_ts(w, res, row, "completed_at");
    jw_col_ts(w, res, row, "posted_at");
    jw_col_string(w, res, row, "category");
    jw_col_int(w, res, row, "target_length");
    jw_col_int(w, res, row, "source_count");
    jw_col_string(w, res, row, "language");
    jw_col_string(w, res, row, "content");
    jw_col_string(w, res, row, "content_html");
    jw_col_int(w, res, row, "word_count");
    jw_col_string(w, res, row, "meta_description");
    jw_col_string(w, res, row, "slug");
    jw_col_json(w, res, row, "sources");
    jw_col_json(w, res, row, "brief");
    jw_col_string(w, res, row, "campaign_id");
    jw_col_string(w, res, row, "webhook_integration_id");
    jw_key(w, "is_recurring");
    jw_bool(w, db_bool(res, row, "is_recurring"));
    jw_col_int(w, res, row, "tokens_used");
    jw_col_int(w, res, row, "prompt_tokens");
    jw_col_int(w, res, row, "completion_tokens");
    jw_col_string(w, res, row, "error_message");
    jw_col_int(w, res, row, "retry_count");
    jw_col_int(w, res, row, "posting_attempt_count");
    jw_col_string(w, res, row, "last_posting_error");
    jw_col_string(w, res, row, "published_url");
    jw_object_end(w);
}

void articles_write_list(json_writer_t *w, const PGresult *res)
{
    jw_array_begin(w);
    for (int i = 0; i < PQntuples(res); i++)
        articles_write_json(w, res, i);
    jw_array_end(w);
}

/* ---- request bodies ---- */

void article_options_free(article_options_t *o)
{
    free(o->category);
    free(o->timezone);
    free(o->language);
    o->category = o->timezone = o->language = NULL;
}

void article_input_free(article_input_t *in)
{
    free(in->query);
    in->query = NULL;
    article_options_free(&in->opt);
}

static char *dup_or(const char *s, const char *def)
{
    return xstrdup(s != NULL ? s : def);
}

int article_options_parse(validator_t *v, article_options_t *out)
{
    int before = v->errors;
    memset(out, 0, sizeof(*out));
    out->category = dup_or(v_string(v, "category", 0, 1, 100, 0), "General");
    v_int(v, "target_length", 0, 300, 5000, 1500, &out->target_length);
    v_int(v, "source_count", 0, 1, 10, 5, &out->source_count);
    out->has_scheduled_at = v_timestamp(v, "scheduled_at", &out->scheduled_at) == 1;
    /* The name must be one PostgreSQL knows (pg_timezone_names). When the cached set is loaded it is checked
     * here with the other fields; otherwise the handler checks it once the set is loaded (timezones.h). */
    const char *tz = v_string(v, "timezone", 0, 1, 64, 1);
    if (tz != NULL && timezones_loaded() && !timezones_valid(tz))
        v_error(v, "timezone", "Value error, Invalid timezone", "value_error");
    out->timezone = dup_or(tz, "UTC");
    v_uuid(v, "webhook_integration_id", 0, out->integration_id);
    out->language = dup_or(v_string(v, "language", 0, 2, 35, 1), "en");
    return v->errors > before ? -1 : 0;
}

int article_input_parse(validator_t *v, article_input_t *out)
{
    int before = v->errors;
    memset(out, 0, sizeof(*out));
    /* "query_explanation" is the original API's name for the same field; "query" wins when both are sent. */
    const char *field = v_has(v, "query") || !v_has(v, "query_explanation") ? "query" : "query_explanation";
    const char *q = v_string(v, field, 0, 3, 2000, 0);
    if (q == NULL && !v_has(v, field))
        v_error(v, "query", "Field required", "missing");
    out->query = q != NULL ? xstrdup(q) : NULL;
    article_options_parse(v, &out->opt);
    return v->errors > before ? -1 : 0;
}

/* ---- shared reply helpers ---- */

const db_result_t *articles_batch_error(const db_result_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].err != NULL)
            return &r[i];
    return NULL;
}

int articles_reply_raised(http_req_t *req, const db_result_t *r, size_t n)
{
    const db_result_t *e = articles_batch_error(r, n);
    if (e == NULL || e->sqlstate[0] != 'I' || e->sqlstate[1] != 'L')
        return 0;
    int status = atoi(e->sqlstate + 2);
    if (status < 400 || status > 499)
        return 0;
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", e->err);
    char *nl = strchr(detail, '\n');
    if (nl != NULL)
        *nl = '\0';
    http_reply_error(req, status, detail);
    return 1;
}

void articles_reply_batch_error(http_req_t *req, const db_result_t *r, size_t n, const char *action)
{
    const db_result_t *e = articles_batch_error(r, n);
    if (e == NULL) {
        log_error(action, "batch failed without an error");
        http_reply_error(req, 500, "Internal Server Error");
    } else if (credits_is_insufficient(e)) {
        credits_reply_insufficient(req, e);
    } else if (articles_reply_raised(req, r, n)) {
        /* replied */
    } else if (strcmp(e->sqlstate, "22023") == 0 && strstr(e->err, "time zone") != NULL) {
        /* The check_timezone trigger: reached only when the name cache could not be loaded. */
        http_reply_invalid(req, "body", "timezone", "Value error, Invalid timezone", "value_error");
    } else if (strcmp(e->sqlstate, "23503") == 0 && strstr(e->err, "webhook_integration") != NULL) {
        /* The integration was deleted between the ownership check and the insert. */
        http_reply_error(req, 404, "Integration not found");
    } else {
        kit_db_failed(req, e, action);
    }
}

static void reply_article(http_req_t *req, int status, const PGresult *res)
{
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    articles_write_json(&w, res, 0);
    http_reply_json(req, status, &body);
    buf_free(&body);
}

static void reply_success(http_req_t *req, const char *message)
{
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, 1);
    if (message != NULL) {
        jw_key(&w, "message");
        jw_string(&w, message);
    }
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

/* {"success": true, "message": message, "article": Article} */
static void reply_with_article(http_req_t *req, const char *message, const PGresult *res)
{
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, 1);
    jw_key(&w, "message");
    jw_string(&w, message);
    jw_key(&w, "article");
    articles_write_json(&w, res, 0);
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

/* ---- timezone check before a create ---- */

typedef struct st_tz_step_t {
    http_req_t *req;
    char *tz;
    void (*next)(void *op);
    void (*drop)(void *op);
    void *op;
} tz_step_t;

static void reply_bad_timezone(http_req_t *req)
{
    http_reply_invalid(req, "body", "timezone", "Value error, Invalid timezone", "value_error");
}

static void on_tz_ready(void *data, const db_result_t *failure)
{
    tz_step_t *s = data;
    /* Without the set (the load failed), the database's trigger is the check; its 22023 becomes the same 422.
     */
    if (failure == NULL && !timezones_valid(s->tz)) {
        reply_bad_timezone(s->req);
        s->drop(s->op);
    } else {
        s->next(s->op);
    }
    free(s->tz);
    free(s);
}

void articles_check_timezone(http_req_t *req, const char *tz, void (*next)(void *op), void (*drop)(void *op),
                             void *op)
{
    if (timezones_loaded()) {
        if (timezones_valid(tz)) {
            next(op);
        } else {
            reply_bad_timezone(req);
            drop(op);
        }
        return;
    }
    tz_step_t *s = xmalloc(sizeof(*s));
    s->req = req;
    s->tz = xstrdup(tz);
    s->next = next;
    s->drop = drop;
    s->op = op;
    timezones_when_ready(req->app, on_tz_ready, s);
}

/* ---- POST /articles, POST /generate ---- */

typedef struct st_create_t {
    http_req_t *req;
    article_input_t in;
    idem_t idem;
    char id[37];
    size_t idem_first; /* index of the first idempotency statement in the batch */
} create_t;

static void create_free(void *op)
{
    create_t *c = op;
    article_input_free(&c->in);
    idem_free(&c->idem);
    free(c);
}

/* Renders a replayed create whose first response is not stored yet: the article as it is now. */
static void on_replay_article(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "replaying an article create"))
        return;
    if (PQntuples(r[0].res) != 1)
        http_reply_error(req, 404, "Article not found");
    else
        reply_article(req, 201, r[0].res);
}

static void render_created_article(http_req_t *req, const char *type, char **ids, size_t nids)
{
    (void)type;
    if (nids != 1) {
        http_reply_error(req, 409, "Idempotency-Key reused with a different request");
        return;
    }
    const char *params[] = {ids[0], req->user_id};
    if (db_query(req->app->db, "article_get", 2, params, on_replay_article, req) == NULL)
        kit_db_busy(req);
}

static void on_created(const db_result_t *r, size_t n, void *data)
{
    create_t *c = data;
    http_req_t *req = c->req;
    if (r[n - 1].err != NULL) {
        if (idem_is_duplicate(&c->idem, r, n, c->idem_first))
            idem_replay(req, &c->idem, render_created_article);
        else
            articles_reply_batch_error(req, r, n, "creating an article");
        create_free(c);
        return;
    }
    log_info("creating an article", "article %s for user %s", c->id, req->user_id);
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    articles_write_json(&w, r[n - 1].res, 0);
    idem_reply(req, &c->idem, 201, &body);
    buf_free(&body);
    create_free(c);
}

static void create_run(void *op)
{
    create_t *c = op;
    http_req_t *req = c->req;
    const article_options_t *o = &c->in.opt;
    char tl[24], sc[24], credits[24], ids[40];
    snprintf(tl, sizeof(tl), "%lld", (long long)o->target_length);
    snprintf(sc, sizeof(sc), "%lld", (long long)o->source_count);
    snprintf(credits, sizeof(credits), "%d", req->app->cfg->credits_per_article);
    snprintf(ids, sizeof(ids), "{%s}", c->id);
    const char *integration = o->integration_id[0] != '\0' ? o->integration_id : NULL;
    const char *p_integ[] = {req->user_id, integration};
    const char *p_insert[] = {c->id,
                              req->user_id,
                              c->in.query,
                              o->category,
                              tl,
                              sc,
                              o->has_scheduled_at ? o->scheduled_at.text : NULL,
                              o->has_scheduled_at ? (o->scheduled_at.has_offset ? "t" : "f") : NULL,
                              o->timezone,
                              integration,
                              o->language,
                              credits};
    const char *p_job[] = {ids};
    const char *p_get[] = {c->id, req->user_id};
    db_stmt_t stmts[6];
    size_t k = 0;
    char *id_list[] = {c->id};
    c->idem_first = k;
    k += idem_statements(&c->idem, req->user_id, "article", id_list, 1, stmts + k);
    if (integration != NULL)
        stmts[k++] = (db_stmt_t){"integration_require", NULL, 2, p_integ};
    stmts[k++] = (db_stmt_t){"article_insert", NULL, 12, p_insert};
    stmts[k++] = (db_stmt_t){"article_enqueue_generate", NULL, 1, p_job};
    stmts[k++] = (db_stmt_t){"article_get", NULL, 2, p_get};
    if (db_batch(req->app->db, stmts, k, on_created, c) == NULL) {
        kit_db_busy(req);
        create_free(c);
    }
}

void articles_create(http_req_t *req)
{
    const char *endpoint = strcmp(req->route, "/generate") == 0 ? "POST /generate" : "POST /articles";
    create_t *c = xcalloc(1, sizeof(*c));
    c->req = req;
    if (idem_init(&c->idem, req, endpoint) != 0) {
        free(c);
        return;
    }
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        free(c);
        return;
    }
    article_input_parse(&v, &c->in);
    if (v_finish(&v) != 0) {
        v_free(&v);
        create_free(c);
        return;
    }
    idem_hash(&c->idem, v.root);
    v_free(&v);
    crypto_uuid4(c->id);
    articles_check_timezone(req, c->in.opt.timezone, create_run, create_free, c);
}

/* ---- GET /articles, GET /articles/stats, GET /articles/{id} ---- */

static void on_article_list(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (kit_db_failed(req, &r[n - 1], "listing articles"))
        return;
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    articles_write_list(&w, r[n - 1].res);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

static const char *const article_statuses[] = {"queued",          "researching", "scraping", "analyzing",
                                               "writing",         "completed",   "posted",   "failed",
                                               "delivery_failed", "cancelled"};

void articles_list(http_req_t *req)
{
    int64_t skip, limit;
    if (kit_paging(req, &skip, &limit) != 0)
        return;
    validator_t v;
    memset(&v, 0, sizeof(v));
    v.req = req;
    v.where = "query";
    char *status = http_query_param(req, "status");
    char *campaign = http_query_param(req, "campaign_id");
    char campaign_id[37] = "";
    /* An empty parameter (?status=) is what a form with nothing chosen sends: no filter. */
    if (status != NULL && status[0] != '\0') {
        int ok = 0;
        for (size_t i = 0; i < sizeof(article_statuses) / sizeof(article_statuses[0]); i++)
            ok |= strcmp(status, article_statuses[i]) == 0;
        if (!ok)
            v_error(
                &v, "status",
                "Input should be 'queued', 'researching', 'scraping', 'analyzing', 'writing', 'completed', "
                "'posted', 'failed', 'delivery_failed' or 'cancelled'",
                "enum");
    }
    if (campaign != NULL && campaign[0] != '\0' && kit_uuid(campaign, campaign_id) != 0)
        v_error(&v, "campaign_id", "Input should be a valid UUID", "uuid_parsing");
    if (v_finish(&v) != 0) {
        v_free(&v);
        free(status);
        free(campaign);
        return;
    }
    v_free(&v);
    char s[24], l[24];
    snprintf(s, sizeof(s), "%lld", (long long)skip);
    snprintf(l, sizeof(l), "%lld", (long long)limit);
    const char *params[] = {req->user_id, status != NULL && status[0] != '\0' ? status : NULL,
                            campaign_id[0] != '\0' ? campaign_id : NULL, s, l};
    if (db_query(req->app->db, "article_list", 5, params, on_article_list, req) == NULL)
        kit_db_busy(req);
    free(status);
    free(campaign);
}

static void on_stats(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "counting articles"))
        return;
    static const char *const keys[] = {"total",     "queued", "in_progress", "completed",
                                       "scheduled", "posted", "failed"};
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        jw_key(&w, keys[i]);
        jw_int(&w, db_int(r[0].res, 0, keys[i]));
    }
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void articles_stats(http_req_t *req)
{
    const char *params[] = {req->user_id};
    if (db_query(req->app->db, "article_stats", 1, params, on_stats, req) == NULL)
        kit_db_busy(req);
}

static void on_article(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading an article"))
        return;
    if (PQntuples(r[0].res) != 1)
        http_reply_error(req, 404, "Article not found");
    else
        reply_article(req, 200, r[0].res);
}

void articles_get(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    const char *params[] = {id, req->user_id};
    if (db_query(req->app->db, "article_get", 2, params, on_article, req) == NULL)
        kit_db_busy(req);
}

/* ---- PATCH /articles/{id} ---- */

static void on_patched(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (r[n - 1].err != NULL) {
        articles_reply_batch_error(req, r, n, "updating an article");
        return;
    }
    if (PQntuples(r[n - 1].res) != 1)
        http_reply_error(req, 404, "Article not found");
    else
        reply_with_article(req, "Article updated", r[n - 1].res);
}

void articles_patch(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    validator_t v;
    if (v_parse_body(&v, req, 1) != 0) {
        v_free(&v);
        return;
    }
    /* Only the system moves an article through its statuses (API.md section 1). */
    if (v_has(&v, "status")) /* null means absent (API.md section 2) */
        v_error(&v, "status", "Extra inputs are not permitted", "extra_forbidden");
    const char *content = v_string(&v, "content", 0, 0, 0, 0);
    const char *topic = v_string(&v, "topic", 0, 1, 500, 0);
    const char *category = v_string(&v, "category", 0, 1, 100, 0);
    kit_ts_t ts;
    int has_ts = v_timestamp(&v, "scheduled_at", &ts) == 1;
    char integration[37];
    int has_integ = v_uuid(&v, "webhook_integration_id", 0, integration) == 1;
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    const char *p_integ[] = {req->user_id, integration};
    /* New content brings its HTML and word count with it, rendered here as the pipeline does. */
    char *html = content ? markdown_to_html(content, strlen(content)) : NULL;
    char words[24];
    snprintf(words, sizeof(words), "%d", content ? markdown_word_count(content, strlen(content)) : 0);
    char *h1 = content ? markdown_title(content) : NULL;
    const char *p_patch[] = {id,
                             req->user_id,
                             content,
                             topic,
                             category,
                             has_ts ? ts.text : NULL,
                             has_ts ? (ts.has_offset ? "t" : "f") : NULL,
                             has_integ ? integration : NULL,
                             html,
                             content ? words : NULL,
                             h1};
    const char *p_delivery[] = {id, req->user_id, has_ts || has_integ ? "t" : "f"};
    const char *p_get[] = {id, req->user_id};
    db_stmt_t stmts[5];
    size_t k = 0;
    if (has_integ)
        stmts[k++] = (db_stmt_t){"integration_require", NULL, 2, p_integ};
    stmts[k++] = (db_stmt_t){"article_patch", NULL, 11, p_patch};
    if (has_ts || has_integ)
        stmts[k++] = (db_stmt_t){"article_patch_delivery", NULL, 3, p_delivery};
    stmts[k++] = (db_stmt_t){"article_get", NULL, 2, p_get};
    if (db_batch(req->app->db, stmts, k, on_patched, req) == NULL)
        kit_db_busy(req);
    free(html);
    free(h1);
    v_free(&v);
}

/* ---- DELETE /articles/{id} ---- */

static void on_deleted(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (r[n - 1].err != NULL) {
        articles_reply_batch_error(req, r, n, "deleting an article");
        return;
    }
    if (PQntuples(r[n - 1].res) != 1) {
        http_reply_error(req, 404, "Article not found");
        return;
    }
    if (PQntuples(r[0].res) == 1)
        log_info("deleting an article", "article %s cancelled while generating, %s credit(s) refunded",
                 PQgetvalue(r[n - 1].res, 0, 0), db_value(r[0].res, 0, "refunded"));
    reply_success(req, "Article deleted");
}

void articles_delete(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    const char *params[] = {id, req->user_id};
    /* Refund and cancel before the delete, in one transaction: the article never disappears holding a charge.
     */
    db_stmt_t stmts[] = {
        {"article_refund_generating", NULL, 2, params},
        {"article_cancel_jobs", NULL, 2, params},
        {"article_delete", NULL, 2, params},
    };
    if (db_batch(req->app->db, stmts, 3, on_deleted, req) == NULL)
        kit_db_busy(req);
}

/* ---- POST /articles/{id}/retry ---- */

static void on_retried(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (r[n - 1].err != NULL) {
        articles_reply_batch_error(req, r, n, "retrying an article");
        return;
    }
    log_info("retrying an article", "article %s queued again", db_value(r[n - 1].res, 0, "id"));
    reply_with_article(req, "Article queued for retry", r[n - 1].res);
}

void articles_retry(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    char credits[24], ids[40];
    snprintf(credits, sizeof(credits), "%d", req->app->cfg->credits_per_article);
    snprintf(ids, sizeof(ids), "{%s}", id);
    const char *params[] = {id, req->user_id};
    const char *p_retry[] = {id, req->user_id, credits};
    const char *p_job[] = {ids};
    db_stmt_t stmts[] = {
        {"article_retry_check", NULL, 2, params},
        {"article_retry", NULL, 3, p_retry},
        {"article_enqueue_generate", NULL, 1, p_job},
        {"article_get", NULL, 2, params},
    };
    if (db_batch(req->app->db, stmts, 4, on_retried, req) == NULL)
        kit_db_busy(req);
}

/* ---- POST /articles/{id}/deliver ---- */

static void on_deliver(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (r[n - 1].err != NULL) {
        articles_reply_batch_error(req, r, n, "scheduling a delivery");
        return;
    }
    reply_success(req, "Delivery scheduled");
}

void articles_deliver(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    const char *params[] = {id, req->user_id};
    const char *p_job[] = {id};
    db_stmt_t stmts[] = {
        {"article_deliver_check", NULL, 2, params},
        {"article_deliver", NULL, 2, params},
        {"article_enqueue_delivery", NULL, 1, p_job},
    };
    if (db_batch(req->app->db, stmts, 3, on_deliver, req) == NULL)
        kit_db_busy(req);
}

/* ---- GET /articles/{id}/deliveries ---- */

static void write_delivery(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_col_string(w, res, row, "id");
    jw_col_int(w, res, row, "attempt");
    jw_col_string(w, res, row, "integration_id");
    jw_col_string(w, res, row, "url");
    jw_col_int(w, res, row, "status_code");
    jw_col_string(w, res, row, "error");
    jw_col_int(w, res, row, "duration_ms");
    jw_col_ts(w, res, row, "created_at");
    jw_object_end(w);
}

static void on_deliveries(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing deliveries") || kit_db_failed(req, &r[1], "listing deliveries"))
        return;
    if (!db_bool(r[0].res, 0, "found")) {
        http_reply_error(req, 404, "Article not found");
        return;
    }
    kit_reply_rows(req, r[1].res, write_delivery);
}

/* Runs "<exists statement>" then "<list statement>" for path id i (named name) with paging. */
static void owned_list(http_req_t *req, const char *name, const char *exists_stmt, const char *list_stmt,
                       db_batch_cb cb)
{
    char id[37];
    if (kit_path_uuid(req, 0, name, id) != 0)
        return;
    char s[24], l[24];
    if (kit_paging_text(req, s, l) != 0)
        return;
    const char *p_exists[] = {id, req->user_id};
    const char *p_list[] = {id, req->user_id, s, l};
    db_stmt_t stmts[] = {
        {exists_stmt, NULL, 2, p_exists},
        {list_stmt, NULL, 4, p_list},
    };
    if (db_batch(req->app->db, stmts, 2, cb, req) == NULL)
        kit_db_busy(req);
}

void articles_deliveries(http_req_t *req)
{
    owned_list(req, "article_id", "article_exists", "article_deliveries", on_deliveries);
}

/* ---- GET /campaigns/{id}/articles ---- */

static void on_campaign_articles(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing a campaign's articles") ||
        kit_db_failed(req, &r[1], "listing a campaign's articles"))
        return;
    if (!db_bool(r[0].res, 0, "found")) {
        http_reply_error(req, 404, "Campaign not found");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    articles_write_list(&w, r[1].res);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void articles_of_campaign(http_req_t *req)
{
    owned_list(req, "campaign_id", "campaign_exists", "campaign_articles", on_campaign_articles);
}

/* ---- POST /internal/article-complete ---- */

static void on_completed(const db_result_t *r, size_t n, void *data)
{
    http_req_t *req = data;
    if (r[0].err != NULL) {
        articles_reply_batch_error(req, r, n, "recording an article's completion");
        return;
    }
    if (db_int(r[0].res, 0, "found") == 0) {
        http_reply_error(req, 404, "Article not found");
        return;
    }
    if (db_int(r[0].res, 0, "changed") > 0)
        log_info("recording an article's completion",
                 "article updated, %lld generation job(s) cancelled, %lld "
                 "delivery job(s) queued",
                 (long long)db_int(r[0].res, 0, "cancelled"), (long long)db_int(r[0].res, 0, "deliveries"));
    reply_success(req, NULL);
}

void articles_internal_complete(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    char id[37];
    v_uuid(&v, "article_id", 1, id);
    int64_t tokens = 0;
    v_int(&v, "tokens_used", 1, 0, INT32_MAX, 0, &tokens);
    const char *status = v_string(&v, "status", 0, 0, 0, 1);
    if (status != NULL && strcmp(status, "completed") != 0 && strcmp(status, "failed") != 0)
        v_error(&v, "status", "Input should be 'completed' or 'failed'", "literal_error");
    const char *content = v_string(&v, "content", 0, 0, 0, 0);
    const char *error = v_string(&v, "error_message", 0, 0, 2000, 1);
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    char tok[24];
    snprintf(tok, sizeof(tok), "%lld", (long long)tokens);
    char *html = content ? markdown_to_html(content, strlen(content)) : NULL;
    char words[24];
    snprintf(words, sizeof(words), "%d", content ? markdown_word_count(content, strlen(content)) : 0);
    char *h1 = content ? markdown_title(content) : NULL;
    const char *params[] = {id, tok, status, content, error, html, content ? words : NULL, h1};
    if (db_query(req->app->db, "article_complete", 8, params, on_completed, req) == NULL)
        kit_db_busy(req);
    free(html);
    free(h1);
    v_free(&v);
}
