#include "webhook/deliver.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "jobs/queue.h"
#include "webhook/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Retry-After longer than this does not postpone the next attempt further (API.md section 6). */
#define RETRY_AFTER_CAP_S 3600

/* Each state names what the machine does, or the one operation it waits for (each bounded by the timer). */
#define DLV_STATES(X)                                                                                        \
    X(LOAD)      /* reads the article, its sources and its integration */                                    \
    X(LOADING)   /* waits for them (db deadline) */                                                          \
    X(SEND)      /* builds the body, signs it, sends it */                                                   \
    X(SENDING)   /* waits for the receiver (send deadline; at the drain deadline: interrupted) */            \
    X(RECORD)    /* records the attempt, the article's new state and the job's end in one transaction */     \
    X(RECORDING) /* waits for that transaction (db deadline) */                                              \
    X(RETRY)     /* the database failed: the job is failed, to run again later */                            \
    X(NOTHING)   /* nothing to deliver any more: the job is done */                                          \
    X(REJECT)    /* a job without an article: failed for good */                                             \
    X(DONE)      /* the job was let go (or taken back): teardown */

typedef enum {
#define X(s) DLV_##s,
    DLV_STATES(X)
#undef X
} dlv_state_t;

static const char *const dlv_state_names[] = {
#define X(s) #s,
    DLV_STATES(X)
#undef X
};

typedef struct st_dlv_t {
    const dlv_env_t *env;
    jobs_job_t *job;
    dlv_state_t state;
    int ready;     /* the operation the waiting state waits for answered */
    int timed_out; /* its deadline passed */
    int interrupt; /* the drain deadline: an unanswered send is recorded as interrupted */
    int halt;      /* deliver_halt: stop now without touching the job */
    char id[37];
    char msg_id[40];
    /* in flight: at most one of these */
    db_step_t step;
    webhook_send_t *send;
    uv_timer_t deadline; /* the machine is freed in its close callback */
    PGresult *row;       /* the loaded article */
    /* the attempt's outcome */
    int success;
    long status;
    char error[320];
    long retry_after_s;
    char *published_url;
    int64_t duration_ms;
    uint64_t sent_at; /* loop time the request went out */
    int disable;      /* 410: the integration is turned off */
    int final;        /* no attempt follows this one whatever the count (410, disabled integration) */
} dlv_t;

static struct {
    app_t *app;
    dlv_env_t env;
    uv_timer_t sweep;
    int started;
    int sweeping;
} D;

static void advance(dlv_t *d);

static const db_named_sql_t statements[] = {
    {"dlv_load",
     "SELECT a.id, a.status, a.campaign_id, coalesce(a.title, a.topic) AS title, a.content, a.content_html, "
     "a.category,"
     "       (a.brief -> 'keywords')::text AS keywords, a.meta_description, a.slug, a.word_count,"
     "       a.scheduled_at, a.created_at, a.posting_attempt_count, a.webhook_integration_id,"
     "       (SELECT coalesce(json_agg(json_build_object('url', s.url, 'title', s.title) ORDER BY "
     "s.position),"
     "                        '[]') FROM article_sources s WHERE s.article_id = a.id)::text AS sources,"
     "       i.webhook_url, i.webhook_secret, i.api_key, i.is_active"
     "  FROM articles a LEFT JOIN webhook_integrations i ON i.id = a.webhook_integration_id"
     " WHERE a.id = $1"},
    {"dlv_attempt", "INSERT INTO webhook_deliveries (article_id, integration_id, attempt, url, webhook_id, "
                    "success, status_code,"
                    "                                error, duration_ms)"
                    " VALUES ($1, $2, $3::int, $4, $5, $6::bool, nullif($7::int, 0), $8, $9::int)"},
    /* Success: posted, and the campaign counts it, only when this attempt is the one that posted it and the
     * article was never posted before (a re-delivery through POST /articles/{id}/deliver posts it again but
     * it is still one article: posted_at, kept by the reset, tells them apart). */
    {"dlv_posted",
     "WITH o AS (SELECT id, posted_at FROM articles WHERE id = $1 AND status = 'completed' FOR UPDATE),"
     " u AS (UPDATE articles a SET status = 'posted', posted_at = now(), published_url = coalesce($2, "
     "a.published_url),"
     "                             last_posting_error = NULL, next_delivery_at = NULL, webhook_id = $3"
     "        FROM o WHERE a.id = o.id RETURNING a.campaign_id, o.posted_at IS NULL AS first_post)"
     " UPDATE campaigns c SET articles_posted = articles_posted + 1 FROM u WHERE c.id = u.campaign_id AND "
     "u.first_post"},
    {"dlv_integration_ok",
     "UPDATE webhook_integrations SET last_success_at = now(), consecutive_failures = 0 WHERE id = $1"},
    /* Failure: one more attempt used; the next is due after the delay, or none is left. */
    {"dlv_failed",
     "UPDATE articles SET posting_attempt_count = posting_attempt_count + 1, last_posting_error = $2, "
     "webhook_id = $3,"
     "       status = CASE WHEN $5::bool OR posting_attempt_count + 1 >= $4::int THEN 'delivery_failed' ELSE "
     "status END,"
     "       next_delivery_at = CASE WHEN $5::bool OR posting_attempt_count + 1 >= $4::int THEN NULL"
     "                               ELSE now() + make_interval(secs => $6::int) END"
     " WHERE id = $1 AND status = 'completed'"},
    {"dlv_integration_failed",
     "UPDATE webhook_integrations SET consecutive_failures = consecutive_failures + 1,"
     "       is_active = CASE WHEN $2::bool THEN false ELSE is_active END,"
     "       disabled_reason = CASE WHEN $2::bool THEN $3 ELSE disabled_reason END"
     " WHERE id = $1"},
    /* The next attempt is a job due at next_delivery_at (queued after this one is done, same transaction).
     * $1 article, $2 JOBS_KIND_DELIVER. */
    {"dlv_next", "SELECT jobs_enqueue($2, id, next_delivery_at) AS job FROM articles"
                 " WHERE id = $1 AND status = 'completed' AND webhook_integration_id IS NOT NULL"
                 "   AND next_delivery_at IS NOT NULL"},
    /* The safety net: due deliveries that have no job (a crash between completion and enqueue, a job that
     * failed on its own). Reads only the due rows (articles_delivery_due_idx). $1 JOBS_KIND_DELIVER. The
     * enqueues run in a CTE (a volatile one is never inlined), so only the articles that got a job return. */
    {"dlv_sweep",
     "WITH e AS (SELECT a.id AS article_id, jobs_enqueue($1, a.id, a.next_delivery_at) AS job FROM articles a"
     "            WHERE a.status = 'completed' AND a.webhook_integration_id IS NOT NULL"
     "              AND a.next_delivery_at IS NOT NULL AND a.next_delivery_at <= now()"
     "              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.article_id = a.id AND j.kind = $1"
     "                               AND j.state IN ('queued', 'running')))"
     " SELECT article_id FROM e WHERE job IS NOT NULL"},
};

int deliver_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, statements, sizeof(statements) / sizeof(statements[0]));
}

/* ---- helpers: they start, stop and read operations, and never change the state ---- */

static void set_state(dlv_t *d, dlv_state_t s)
{
    if (log_enabled(LOG_LEVEL_DEBUG))
        log_debug("delivering a webhook", "article %s: %s -> %s", d->id, dlv_state_names[d->state],
                  dlv_state_names[s]);
    d->state = s;
}

static const char *col(const dlv_t *d, const char *name)
{
    return db_value(d->row, 0, name);
}

static void on_deadline(uv_timer_t *t)
{
    dlv_t *d = t->data;
    d->timed_out = 1;
    advance(d);
}

static void arm(dlv_t *d, uint64_t ms)
{
    d->ready = 0;
    d->timed_out = 0;
    if (uv_timer_start(&d->deadline, on_deadline, ms, 0) != 0)
        abort(); /* only for a closing handle: a bug */
}

/* An attempt that got no answer: the outcome recorded for it. */
static void unanswered(dlv_t *d, const char *why)
{
    if (d->send != NULL)
        d->env->send.cancel(d->send);
    d->send = NULL;
    d->success = 0;
    d->status = 0;
    snprintf(d->error, sizeof(d->error), "%s", why);
    d->retry_after_s = -1;
    d->duration_ms = (int64_t)(uv_now(d->env->loop) - d->sent_at);
    d->disable = 0;
    d->final = 0;
    metrics_webhook_delivery(0);
}

/* 1 once the waiting state may go on: its operation answered, or its deadline passed (the operation is then
 * cancelled with a timeout as its outcome), or the drain deadline interrupted a send. */
static int waited(dlv_t *d)
{
    if (!d->ready && !d->timed_out && !(d->interrupt && d->state == DLV_SENDING))
        return 0;
    if (!d->ready && d->step.q != NULL)
        db_step_give_up(&d->step, "timed out waiting for the database");
    if (!d->ready && d->state == DLV_SENDING)
        unanswered(d, d->timed_out ? "timed out waiting for the receiver" : "interrupted by shutdown");
    if (uv_timer_stop(&d->deadline) != 0)
        abort();
    d->ready = d->timed_out = 0;
    return 1;
}

static void on_step(db_step_t *s)
{
    dlv_t *d = s->data;
    d->ready = 1;
    advance(d);
}

static int send_batch(dlv_t *d, const db_stmt_t *stmts, size_t n)
{
    arm(d, d->env->db_deadline_ms);
    return db_step_start(&d->step, stmts, n, 0);
}

/* The attempt's body: article.published as Python's json.dumps(sort_keys=True) would write it. The JSON
 * columns are read here, at the edge, into the payload's typed article. */
static char *build_body(const dlv_t *d, size_t *len)
{
    char err[128];
    const char *kw_text = col(d, "keywords"), *src_text = col(d, "sources");
    yajl_val kw = kw_text ? json_parse(kw_text, strlen(kw_text), err, sizeof(err)) : NULL;
    yajl_val src = src_text ? json_parse(src_text, strlen(src_text), err, sizeof(err)) : NULL;
    size_t nk = (kw && YAJL_IS_ARRAY(kw)) ? kw->u.array.len : 0;
    size_t ns = (src && YAJL_IS_ARRAY(src)) ? src->u.array.len : 0;
    const char **keywords = xcalloc(nk + 1, sizeof(char *));
    webhook_source_t *sources = xcalloc(ns + 1, sizeof(webhook_source_t));
    size_t k = 0;
    for (size_t i = 0; i < nk; i++)
        if (YAJL_IS_STRING(kw->u.array.values[i]))
            keywords[k++] = kw->u.array.values[i]->u.string;
    for (size_t i = 0; i < ns; i++) {
        yajl_val u = json_get(src->u.array.values[i], "url"), t = json_get(src->u.array.values[i], "title");
        sources[i].url = (u && YAJL_IS_STRING(u)) ? u->u.string : NULL;
        sources[i].title = (t && YAJL_IS_STRING(t)) ? t->u.string : NULL;
    }
    char scheduled[40], created[40];
    const char *s_at = col(d, "scheduled_at"), *c_at = col(d, "created_at");
    webhook_article_t a = {
        .id = d->id,
        .campaign_id = col(d, "campaign_id"),
        .title = col(d, "title"), /* the article's H1 (its topic only for content without one) */
        .content = col(d, "content"),
        .content_html = col(d, "content_html"),
        .category = col(d, "category"),
        .keywords = keywords,
        .keyword_count = k,
        .meta_description = col(d, "meta_description"),
        .slug = col(d, "slug"),
        .sources = sources,
        .source_count = ns,
        .word_count = col(d, "word_count") ? db_int(d->row, 0, "word_count") : -1,
        .scheduled_at = (s_at && time_pg_to_iso(s_at, scheduled, sizeof(scheduled)) == 0) ? scheduled : NULL,
        .created_at = (c_at && time_pg_to_iso(c_at, created, sizeof(created)) == 0) ? created : NULL};
    buf_t body = BUF_INIT;
    webhook_payload(&body, &a);
    free(keywords);
    free(sources);
    yajl_tree_free(kw);
    yajl_tree_free(src);
    *len = body.len;
    return buf_release(&body);
}

static void on_sent(webhook_send_t *s)
{
    dlv_t *d = s->data;
    d->send = NULL;
    d->success = s->success;
    d->status = s->status;
    snprintf(d->error, sizeof(d->error), "%s", s->error ? s->error : "");
    d->retry_after_s = s->retry_after_s;
    d->published_url = s->published_url ? xstrdup(s->published_url) : NULL;
    d->duration_ms = s->duration_ms;
    d->disable = s->status == 410;
    d->final = d->disable;
    metrics_webhook_delivery(s->success);
    d->ready = 1;
    advance(d);
}

static int start_send(dlv_t *d)
{
    size_t len;
    char *body = build_body(d, &len);
    webhook_request_t req = {.url = col(d, "webhook_url"),
                             .secret = col(d, "webhook_secret"),
                             .api_key = col(d, "api_key"),
                             .msg_id = d->msg_id,
                             .body = body,
                             .body_len = len,
                             .timeout_s = d->env->cfg->webhook_timeout_s,
                             .allow_private = d->env->cfg->allow_private_urls};
    arm(d, d->env->send_deadline_ms);
    d->sent_at = uv_now(d->env->loop);
    d->send = d->env->send.send(d->env->send.ctx, &req, on_sent, d);
    free(body);
    return d->send != NULL ? 0 : -1;
}

/* The attempt, the article's new state, the integration's and the job's, in one transaction. */
static int send_record(dlv_t *d)
{
    const config_t *cfg = d->env->cfg;
    char attempt[24], status[24], duration[24], max[16], delay[24], job_id[24];
    int64_t attempt_no = db_int(d->row, 0, "posting_attempt_count") + 1;
    snprintf(attempt, sizeof(attempt), "%lld", (long long)attempt_no);
    snprintf(status, sizeof(status), "%ld", d->status);
    snprintf(duration, sizeof(duration), "%lld", (long long)d->duration_ms);
    snprintf(max, sizeof(max), "%d", cfg->webhook_max_attempts);
    long wait = cfg->webhook_retry_delay_s;
    if (d->retry_after_s >= 0)
        wait = d->retry_after_s > RETRY_AFTER_CAP_S ? RETRY_AFTER_CAP_S : d->retry_after_s;
    snprintf(delay, sizeof(delay), "%ld", wait);
    snprintf(job_id, sizeof(job_id), "%lld", (long long)d->job->id);
    const char *integ = col(d, "webhook_integration_id");
    const char *p_attempt[] = {d->id,     integ,
                               attempt,   col(d, "webhook_url"),
                               d->msg_id, d->success ? "true" : "false",
                               status,    d->success ? NULL : d->error,
                               duration};
    const char *p_posted[] = {d->id, d->published_url, d->msg_id};
    const char *p_integ_ok[] = {integ};
    const char *p_failed[] = {d->id, d->error, d->msg_id, max, d->final ? "true" : "false", delay};
    const char *p_integ_failed[] = {integ, d->disable ? "true" : "false", "HTTP 410 Gone from the receiver"};
    /* The runner id was taken at start: app->jobs is cleared when stopping begins, and a draining delivery
     * records after that. */
    const char *p_job[] = {job_id, d->env->jobs.runner_id};
    const char *p_next[] = {d->id, JOBS_KIND_DELIVER};
    db_stmt_t stmts[6];
    size_t n = 0;
    stmts[n++] = (db_stmt_t){"dlv_attempt", NULL, 9, p_attempt};
    if (d->success) {
        stmts[n++] = (db_stmt_t){"dlv_posted", NULL, 3, p_posted};
        stmts[n++] = (db_stmt_t){"dlv_integration_ok", NULL, 1, p_integ_ok};
        stmts[n++] = (db_stmt_t){JOBS_STMT_MARK_DONE, NULL, 2, p_job};
        log_info("delivering a webhook", "article %s posted (attempt %lld, HTTP %ld, %lld ms)", d->id,
                 (long long)attempt_no, d->status, (long long)d->duration_ms);
    } else {
        stmts[n++] = (db_stmt_t){"dlv_failed", NULL, 6, p_failed};
        stmts[n++] = (db_stmt_t){"dlv_integration_failed", NULL, 3, p_integ_failed};
        stmts[n++] = (db_stmt_t){JOBS_STMT_MARK_DONE, NULL, 2, p_job};
        stmts[n++] = (db_stmt_t){"dlv_next", NULL, 2, p_next};
        log_warn("delivering a webhook", "article %s: attempt %lld of %d failed: %s", d->id,
                 (long long)attempt_no, cfg->webhook_max_attempts, d->error);
    }
    return send_batch(d, stmts, n);
}

static void on_deadline_closed(uv_handle_t *h)
{
    dlv_t *d = h->data;
    db_step_clear(&d->step);
    PQclear(d->row);
    free(d->published_url);
    free(d);
}

/* The one teardown: stops every operation and frees the machine once its timer is closed. */
static void teardown(dlv_t *d)
{
    db_step_cancel(&d->step);
    if (d->send != NULL)
        d->env->send.cancel(d->send);
    d->send = NULL;
    uv_close((uv_handle_t *)&d->deadline, on_deadline_closed);
}

/* ---- the machine: every transition is here ---- */

static void advance(dlv_t *d)
{
    while (d->state != DLV_DONE || !uv_is_closing((uv_handle_t *)&d->deadline)) {
        if (d->halt && d->state != DLV_DONE)
            set_state(d, DLV_DONE);
        switch (d->state) {
        case DLV_LOAD: {
            const char *params[] = {d->id};
            db_stmt_t s = {"dlv_load", NULL, 1, params};
            set_state(d, send_batch(d, &s, 1) == 0 ? DLV_LOADING : DLV_RETRY);
            break;
        }
        case DLV_LOADING:
            if (!waited(d))
                return;
            if (d->step.err != NULL) {
                set_state(d, DLV_RETRY);
                break;
            }
            d->row = d->step.res;
            d->step.res = NULL;
            /* Nothing to deliver any more: posted meanwhile, failed, deleted, or the integration was removed.
             */
            if (d->step.rows != 1 || strcmp(col(d, "status"), "completed") != 0 ||
                col(d, "webhook_integration_id") == NULL || col(d, "content") == NULL) {
                set_state(d, DLV_NOTHING);
                break;
            }
            webhook_msg_id(d->id, col(d, "webhook_integration_id"), d->msg_id);
            if (!db_bool(d->row, 0, "is_active")) {
                /* A disabled integration (a 410 earlier, or switched off by its owner) gets no request. */
                snprintf(d->error, sizeof(d->error), "integration is disabled");
                d->status = 0;
                d->success = 0;
                d->retry_after_s = -1;
                d->final = 1;
                set_state(d, DLV_RECORD);
                break;
            }
            set_state(d, DLV_SEND);
            break;
        case DLV_SEND:
            if (start_send(d) != 0) {
                unanswered(d, "the request could not be started");
                set_state(d, DLV_RECORD);
                break;
            }
            set_state(d, DLV_SENDING);
            return;
        case DLV_SENDING:
            if (!waited(d))
                return;
            set_state(d, DLV_RECORD);
            break;
        case DLV_RECORD:
            set_state(d, send_record(d) == 0 ? DLV_RECORDING : DLV_RETRY);
            break;
        case DLV_RECORDING:
            if (!waited(d))
                return;
            if (d->step.err != NULL) {
                /* The attempt happened but could not be recorded: the job runs again (the receiver may see
                 * the same webhook-id twice, which Standard Webhooks receivers de-duplicate). */
                log_error("delivering a webhook", "article %s: recording the attempt failed: %s", d->id,
                          d->step.err);
                set_state(d, DLV_RETRY);
                break;
            }
            d->env->jobs.forget(d->job);
            set_state(d, DLV_DONE);
            break;
        case DLV_RETRY:
            d->env->jobs.fail(d->job, d->step.err ? d->step.err : "database busy", JOBS_RETRY_BACKOFF);
            set_state(d, DLV_DONE);
            break;
        case DLV_NOTHING:
            log_info("delivering a webhook", "article %s: nothing to deliver (%s)", d->id,
                     d->step.rows != 1 ? "deleted" : col(d, "status"));
            d->env->jobs.done(d->job);
            set_state(d, DLV_DONE);
            break;
        case DLV_REJECT:
            d->env->jobs.fail(d->job, JOBS_KIND_DELIVER " job without an article", JOBS_NO_RETRY);
            set_state(d, DLV_DONE);
            break;
        case DLV_DONE:
            teardown(d);
            return;
        }
    }
}

/* ---- entry points ---- */

void deliver_run(const dlv_env_t *env, jobs_job_t *job)
{
    dlv_t *d = xcalloc(1, sizeof(*d));
    d->env = env;
    d->job = job;
    d->retry_after_s = -1;
    job->data = d;
    snprintf(d->id, sizeof(d->id), "%s", job->article_id ? job->article_id : "");
    db_step_init(&d->step, &env->db, on_step, d);
    if (uv_timer_init(env->loop, &d->deadline) != 0)
        abort(); /* only fails for an invalid loop */
    d->deadline.data = d;
    d->state = job->article_id != NULL ? DLV_LOAD : DLV_REJECT;
    advance(d);
}

void deliver_halt(jobs_job_t *job)
{
    dlv_t *d = job->data;
    d->halt = 1;
    advance(d);
}

/* Shutdown (jobs_drain_cb): a request the receiver may already have got is never given up silently, since a
 * resend after the restart would publish the article twice at receivers that do not de-duplicate. A sent one
 * waits for its answer and is recorded like any attempt; at the drain deadline (SHUTDOWN_TIMEOUT_S) one still
 * unanswered is recorded as a failed attempt, "interrupted by shutdown", with its next attempt queued. One
 * not sent yet is stopped and handed back (0). */
int deliver_drain(jobs_job_t *job, int deadline)
{
    dlv_t *d = job->data;
    switch (d->state) {
    case DLV_SENDING:
        if (!deadline) {
            log_info("delivering a webhook", "article %s: stopping; waiting for the receiver's answer",
                     d->id);
            return 1;
        }
        d->interrupt = 1;
        advance(d); /* records it, or fails the job when the pool refuses: finished either way */
        return 1;
    case DLV_RECORDING:
        return 1; /* the attempt's record is on its way */
    default:
        return 0;
    }
}

static void on_job_start(jobs_job_t *job, void *data)
{
    deliver_run(data, job);
}

static void on_job_cancel(jobs_job_t *job, void *data)
{
    (void)data;
    deliver_halt(job);
}

static int on_job_drain(jobs_job_t *job, int deadline, void *data)
{
    (void)data;
    return deliver_drain(job, deadline);
}

/* ---- the sweep ---- */

typedef struct st_sweep_req_t {
    void (*cb)(void *data, const char *err, int enqueued);
    void *data;
} sweep_req_t;

static void on_swept(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    sweep_req_t *s = data;
    int count = r[0].err == NULL ? PQntuples(r[0].res) : 0;
    if (r[0].err != NULL)
        log_warn("sweeping deliveries", "%s", r[0].err);
    else if (count > 0)
        log_info("sweeping deliveries", "%d due deliveries had no job; queued them", count);
    if (s->cb == NULL)
        D.sweeping = 0;
    else
        s->cb(s->data, r[0].err, count);
    free(s);
}

int deliver_sweep_now(app_t *app, void (*cb)(void *data, const char *err, int enqueued), void *data)
{
    sweep_req_t *s = xmalloc(sizeof(*s));
    s->cb = cb;
    s->data = data;
    const char *params[] = {JOBS_KIND_DELIVER};
    if (db_query(app->db, "dlv_sweep", 1, params, on_swept, s) == NULL) {
        free(s);
        return -1;
    }
    return 0;
}

static void on_sweep_timer(uv_timer_t *t)
{
    (void)t;
    if (D.sweeping || D.app->stopping)
        return;
    D.sweeping = 1;
    if (deliver_sweep_now(D.app, NULL, NULL) != 0)
        D.sweeping = 0;
}

static webhook_send_t *send_on_net(void *ctx, const webhook_request_t *req, webhook_send_cb cb, void *data)
{
    return webhook_send(ctx, req, cb, data);
}

int deliver_start(app_t *app)
{
    if (app->jobs == NULL)
        return 0;
    D.app = app;
    D.env = (dlv_env_t){.loop = app->loop,
                        .cfg = app->cfg,
                        .db = db_target_pool(app->db),
                        .send = {.send = send_on_net, .cancel = webhook_send_cancel, .ctx = app->net},
                        .jobs = jobs_port_runner(app->jobs),
                        .db_deadline_ms = 120000,
                        /* webhook_send's own timeout answers first; this only catches a send that never
                         * would */
                        .send_deadline_ms = (uint64_t)app->cfg->webhook_timeout_s * 1000 + 30000};
    if (jobs_register(app->jobs, JOBS_KIND_DELIVER, on_job_start, on_job_cancel, DELIVER_CONCURRENCY,
                      &D.env) != 0 ||
        jobs_set_drain(app->jobs, JOBS_KIND_DELIVER, on_job_drain) != 0)
        return -1;
    uint64_t every = (uint64_t)app->cfg->webhook_sweep_interval_s * 1000;
    if (uv_timer_init(app->loop, &D.sweep) != 0 ||
        uv_timer_start(&D.sweep, on_sweep_timer, every, every) != 0) {
        log_error("starting the delivery sweep", "the timer could not be started");
        return -1;
    }
    D.started = 1;
    return 0;
}

void deliver_stop(app_t *app)
{
    (void)app;
    if (D.started) {
        uv_close((uv_handle_t *)&D.sweep, NULL);
        D.started = 0;
    }
}
